"""generation_outcome: how a job ended, read the same way from its stream and, once that expired, from its row."""

from __future__ import annotations

import uuid

import pytest

from inference.models import GenerationJob
from inference.outcomes import GenerationDone, GenerationError
from inference.selectors import generation_outcome
from inference.stream import open_stream, write_done, write_error, write_token

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def embedded_streams(settings):
    settings.REDIS_URL = None


def stored_job(**fields) -> str:
    return str(GenerationJob.objects.create(messages=MESSAGES, temperature=0.0, top_p=1.0, max_new_tokens=10, **fields).pk)


def test_the_final_event_of_the_stream_is_the_outcome():
    # given a running job whose stream ended with done
    job_id = stored_job(status="running")
    stream = open_stream(job_id)
    write_token(stream, "Hel")
    written = GenerationDone(text="Hello", prompt_tokens=7, completion_tokens=2, ttft_ms=12.5, tokens_per_s=30.0)
    write_done(stream, written)
    # when its outcome is read, then it is the payload that was written, field for field
    assert generation_outcome(job_id) == written
    stream.delete()


def test_a_job_whose_stream_expired_is_rebuilt_from_its_row():
    # given finished jobs with no stream left
    done = stored_job(status="done", text="Yes [1].", prompt_tokens=90, completion_tokens=4, queue_ms=1.0,
                      ttft_ms=20.0, tokens_per_s=9.5, finish_reason="stop")
    failed = stored_job(status="failed", error_code="worker_lost", error="the worker stopped")
    # when their outcomes are read, then they carry what the rows stored
    assert generation_outcome(done) == GenerationDone(text="Yes [1].", prompt_tokens=90, completion_tokens=4,
                                                      queue_ms=1.0, ttft_ms=20.0, tokens_per_s=9.5)
    assert generation_outcome(failed) == GenerationError("worker_lost", "the worker stopped")


def test_a_running_job_has_no_outcome_yet_and_a_missing_one_says_so():
    running = stored_job(status="running")
    write_token(open_stream(running), "partial")
    assert generation_outcome(running) is None
    assert generation_outcome(str(uuid.uuid4())) == GenerationError("job_missing", "the generation job is gone")
    open_stream(running).delete()


def test_an_error_event_reads_back_as_a_generation_error():
    job_id = stored_job(status="running")
    write_error(open_stream(job_id), GenerationError("timeout", "no answer in time"))
    assert generation_outcome(job_id) == GenerationError("timeout", "no answer in time")
    open_stream(job_id).delete()
