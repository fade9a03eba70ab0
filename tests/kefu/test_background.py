"""Embedded mode runs a task's body in a thread of this process instead of a broker."""

import threading

import pytest

from kefu import background
from kefu.celery import app


@app.task(name="tests.record_thread")
def record_thread(value: int) -> dict:
    return {"value": value * 2, "thread": threading.current_thread().name}


@app.task(name="tests.always_fails")
def always_fails() -> None:
    raise ValueError("boom")


def test_embedded_enqueue_runs_the_task_in_a_named_background_thread(settings):
    # given embedded mode
    settings.KEFU_MODE = "embedded"
    # when a task is enqueued
    future = background.enqueue(record_thread, 21)
    # then its body ran in this process, off the caller's thread, on the default queue's pool
    result = future.result(timeout=10)
    assert result["value"] == 42
    assert result["thread"].startswith("kefu-default")


def test_embedded_enqueue_reports_failures_instead_of_losing_them(settings, caplog):
    # given embedded mode / when the task raises
    settings.KEFU_MODE = "embedded"
    future = background.enqueue(always_fails)
    # then the caller's future carries the error and it is logged
    with pytest.raises(ValueError, match="boom"):
        future.result(timeout=10)
    assert "background task tests.always_fails" in caplog.text
