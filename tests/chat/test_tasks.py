"""chat.answerability_fit as a task: a base without FAQ questions is logged, a search backend that is down
is logged and, on a Celery worker, tried again later."""

from __future__ import annotations

import logging

import pytest
from celery.exceptions import Retry

from chat import tasks
from kb.search import SearchBackendUnavailable


def backend_down(**_):
    raise SearchBackendUnavailable("Milvus at http://milvus:19530 does not answer")


def test_a_fit_while_the_backend_is_down_is_logged_and_not_raised_in_an_embedded_thread(monkeypatch, caplog):
    # given a search backend that is down
    monkeypatch.setattr(tasks, "fit", backend_down)
    # when the fit runs as an embedded process runs tasks (eagerly, in a thread)
    with caplog.at_level(logging.WARNING, logger="chat.tasks"):
        tasks.answerability_fit.apply(args=(7,), throw=True).get()
    # then the reason is logged and nothing is retried in a loop
    assert "answerability kb-7 not fitted, its search backend is down" in caplog.text


def test_a_fit_while_the_backend_is_down_is_retried_later_on_a_worker(monkeypatch):
    # given a search backend that is down, and the task running on a Celery worker (not eagerly)
    monkeypatch.setattr(tasks, "fit", backend_down)
    retried = {}

    def retry(**kwargs):
        retried.update(kwargs)
        return Retry("again later")

    monkeypatch.setattr(tasks.answerability_fit, "retry", retry)
    tasks.answerability_fit.push_request(is_eager=False)
    try:
        # when it runs, then it asks Celery for another try a minute later
        with pytest.raises(Retry):
            tasks.answerability_fit.run(7)
    finally:
        tasks.answerability_fit.pop_request()
    assert retried["countdown"] == tasks.FIT_RETRY_S and retried["max_retries"] == tasks.FIT_RETRIES
