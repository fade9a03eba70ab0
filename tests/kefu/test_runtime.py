"""The web process's warm-up: the embedder, then what the apps registered, so the first customer waits for neither."""

from __future__ import annotations

import logging

import pytest

from chat.pipeline import answerability
from kb.embedding import default_model_name
from kb.retrieval import spelling
from kefu import runtime


@pytest.fixture
def registered(monkeypatch):
    """The apps' registrations, restored afterwards."""
    monkeypatch.setattr(runtime, "_warmups", list(runtime._warmups))
    return runtime._warmups


def test_the_apps_register_the_answerability_references_and_the_speller_word_list(registered):
    assert answerability.warm_references in registered
    assert spelling.english_words in registered


def test_warm_up_loads_the_default_models_reference_vectors(registered, monkeypatch):
    # given a process that has not scored a question yet
    monkeypatch.setattr(answerability, "_reference_vectors", {})
    monkeypatch.setattr(runtime, "_warmups", [answerability.warm_references])
    # when the web process warms up
    runtime.warm_up()
    # then the shipped questions are embedded by the default model, as a base on it will read them
    vectors = answerability._reference_vectors[default_model_name()]
    assert vectors.shape[0] == len(answerability.reference_questions())


def test_a_failing_warm_up_is_logged_and_the_rest_still_run(registered, monkeypatch, caplog):
    ran = []

    def broken():
        raise RuntimeError("no such file")

    monkeypatch.setattr(runtime, "_warmups", [])
    monkeypatch.setattr(runtime, "warm_embedder", lambda: ran.append("embedder"))
    runtime.on_warmup(broken)
    runtime.on_warmup(lambda: ran.append("after"))
    runtime.on_warmup(broken)  # registered once
    with caplog.at_level(logging.ERROR, logger="kefu.runtime"):
        runtime.warm_up()
    assert ran == ["embedder", "after"]
    assert len(runtime._warmups) == 2 and "warm-up" in caplog.text and "broken" in caplog.text
