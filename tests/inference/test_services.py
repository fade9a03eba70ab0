"""Generation jobs: submit/cancel validation, the task body (generation_run) and the reaper."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from inference.handle import GenerationHandle
from inference.models import GenerationJob
from inference.params import InvalidGenerationRequest
from inference.services import (
    generation_cancel,
    generation_reap_stale,
    generation_run,
    generation_stream,
    generation_submit,
)
from inference.stream import DONE, ERROR, TOKEN, open_stream, read_all

pytestmark = pytest.mark.django_db
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(params=["memory", "redis"])
def stream_mode(request, settings):
    """Run a test with in-memory streams (embedded) and with Redis Streams (service)."""
    if request.param == "redis":
        settings.REDIS_URL = request.getfixturevalue("redis_url")
    else:
        settings.REDIS_URL = None
    return request.param


@pytest.mark.parametrize("params, message", [
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"top_p": 1.01}, "top_p"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_new_tokens": 10**6}, "KEFU_MAX_NEW_TOKENS"),
    ({"max_new_tokens": "12"}, "integer"),
    ({"stop": [""]}, "stop"),
    ({"beam_width": 4}, "unknown"),
])
def test_out_of_range_params_are_refused_with_a_clear_error(params, message):
    # when a request with a bad parameter is submitted, then it is refused before anything is stored
    with pytest.raises(InvalidGenerationRequest, match=message) as error:
        generation_submit(messages=MESSAGES, params=params)
    assert isinstance(error.value, ValueError)
    assert GenerationJob.objects.count() == 0


@pytest.mark.parametrize("messages", [[], "hi", [{"role": "robot", "content": "x"}], [{"role": "user"}]])
def test_malformed_messages_are_refused(messages):
    with pytest.raises(InvalidGenerationRequest, match="messages"):
        generation_submit(messages=messages)


def test_submit_stores_a_queued_job_and_enqueues_after_commit(django_capture_on_commit_callbacks):
    # when a valid request is submitted inside a transaction
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_id = generation_submit(messages=MESSAGES, params={"temperature": 0, "max_new_tokens": 8, "stop": "\n"},
                                   metadata={"chat_message_id": "m1"})

    # then the row is queued with its parameters, and the task is only sent on commit
    job = GenerationJob.objects.get(pk=job_id)
    assert (job.status, job.temperature, job.max_new_tokens, job.stop) == ("queued", 0.0, 8, ["\n"])
    assert job.metadata == {"chat_message_id": "m1"}
    assert len(callbacks) == 1


def test_cancel_of_a_queued_job_never_runs_it(stream_mode, django_capture_on_commit_callbacks):
    # given a queued job
    with django_capture_on_commit_callbacks(execute=False):
        job_id = generation_submit(messages=MESSAGES)

    # when it is cancelled before a worker picks it up
    with django_capture_on_commit_callbacks(execute=True):
        assert generation_cancel(job_id=job_id) is True

    # then it is final, its stream says so, and a worker that gets it later does nothing
    assert GenerationJob.objects.get(pk=job_id).status == "cancelled"
    assert [(event.kind, event.data["code"]) for event in open_stream(job_id).read()] == [(ERROR, "cancelled")]
    assert generation_run(job_id=job_id, generator=object()) is None
    assert generation_cancel(job_id=job_id) is False
    open_stream(job_id).delete()


def queued_job(**fields) -> str:
    defaults = dict(messages=MESSAGES, temperature=0.0, top_p=1.0, max_new_tokens=10)
    return str(GenerationJob.objects.create(**{**defaults, **fields}).pk)


@pytest.mark.slow
def test_generation_run_streams_tokens_then_done_and_records_the_outcome(stream_mode, smollm, make_engine):
    # given a queued job and a running engine
    job_id = queued_job()
    engine = make_engine(smollm)

    # when the task body runs it
    status = generation_run(job_id=job_id, generator=engine)

    # then the stream has the tokens then one done event whose text is their concatenation
    events = read_all(open_stream(job_id), timeout_s=5)
    kinds = [event.kind for event in events]
    assert status == "done" and kinds[-1] == DONE and set(kinds[:-1]) == {TOKEN}
    done = events[-1].data
    assert done["text"] == "".join(event.data["text"] for event in events[:-1])
    # and the job row holds the same outcome with its timings
    job = GenerationJob.objects.get(pk=job_id)
    assert (job.status, job.text, job.completion_tokens) == ("done", done["text"], done["completion_tokens"])
    assert job.worker and job.ttft_ms > 0 and job.total_ms >= job.ttft_ms and job.finish_reason in ("stop", "length")
    assert job.prompt_tokens > 0 and job.expert_counts is None
    open_stream(job_id).delete()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the job runs in another thread, with its own connection
def test_cancel_of_a_running_job_stops_it(stream_mode, smollm, make_engine):
    # given a long job running in a worker thread
    job_id = queued_job(max_new_tokens=300, temperature=0.0)
    engine = make_engine(smollm)
    worker = threading.Thread(target=generation_run, kwargs={"job_id": job_id, "generator": engine})
    worker.start()
    stream = open_stream(job_id)
    first = stream.read(block_ms=60_000)
    assert first and first[0].kind == TOKEN

    # when it is cancelled
    assert generation_cancel(job_id=job_id) is True
    worker.join(60)

    # then the job is cancelled well before 300 tokens and the stream ends with a cancelled error
    job = GenerationJob.objects.get(pk=job_id)
    assert job.status == "cancelled" and job.completion_tokens < 300
    events = read_all(stream, timeout_s=5)
    assert events[-1].kind == ERROR and events[-1].data["code"] == "cancelled"
    stream.delete()


class ExplodingGenerator:
    """A generator whose request fails mid-way, as a crashed decode step would."""

    def submit(self, request):
        handle = GenerationHandle(request)
        handle.emit("partial ")
        threading.Timer(0.05, lambda: handle.fail("RuntimeError: device lost")).start()
        return handle


class BrokenGenerator:
    def submit(self, request):
        raise RuntimeError("engine thread is dead")


@pytest.mark.parametrize("generator, code", [(ExplodingGenerator(), "generation_failed"),
                                             (BrokenGenerator(), "internal_error")])
def test_a_failing_generator_ends_in_an_error_event_and_a_failed_job(stream_mode, generator, code):
    # given a queued job, when the generator fails under it
    job_id = queued_job()
    status = generation_run(job_id=job_id, generator=generator)

    # then the job is failed with the reason, and the stream ends with an error event
    job = GenerationJob.objects.get(pk=job_id)
    assert status == "failed" and job.status == "failed" and job.error_code == code
    events = open_stream(job_id).read()
    assert events[-1].kind == ERROR and events[-1].data["code"] == code
    open_stream(job_id).delete()


def test_reaper_fails_jobs_left_running_by_a_dead_worker(stream_mode, settings):
    # given a job a dead worker left running 10 minutes ago, and one that just started
    settings.KEFU_GENERATION_STALE_AFTER = 120
    old = timezone.now() - timedelta(minutes=10)
    stale_id = queued_job(status="running", started_at=old, worker="dead-host:1")
    fresh_id = queued_job(status="running", started_at=timezone.now(), worker="live-host:2")

    # when the reaper runs
    reaped = generation_reap_stale()

    # then only the stale one is failed, with an error event its reader will see
    assert reaped == [stale_id]
    assert GenerationJob.objects.get(pk=stale_id).status == "failed"
    assert GenerationJob.objects.get(pk=fresh_id).status == "running"
    events = open_stream(stale_id).read()
    assert [(event.kind, event.data["code"]) for event in events] == [(ERROR, "worker_lost")]
    for job_id in (stale_id, fresh_id):
        open_stream(job_id).delete()


def test_reaper_fails_jobs_whose_task_message_was_lost(stream_mode, settings):
    # given a job queued 10 minutes ago that no worker ever started (its message was lost), and a fresh one
    settings.KEFU_GENERATION_STALE_AFTER = 120
    lost_id, fresh_id = queued_job(), queued_job()
    GenerationJob.objects.filter(pk=lost_id).update(created_at=timezone.now() - timedelta(minutes=10))

    # when the reaper runs
    reaped = generation_reap_stale()

    # then only the lost one is failed (never to run), with an error event its reader will see
    assert reaped == [lost_id]
    lost = GenerationJob.objects.get(pk=lost_id)
    assert (lost.status, lost.error_code) == ("failed", "not_started")
    assert GenerationJob.objects.get(pk=fresh_id).status == "queued"
    assert [(event.kind, event.data["code"]) for event in open_stream(lost_id).read()] == [(ERROR, "not_started")]
    for job_id in (lost_id, fresh_id):
        open_stream(job_id).delete()


def test_a_reader_waiting_on_a_dead_job_gets_an_error(stream_mode, settings):
    # given a stale running job whose worker died before writing anything
    settings.KEFU_GENERATION_STALE_AFTER = 60
    job_id = queued_job(status="running", started_at=timezone.now() - timedelta(minutes=5), worker="gone:9")

    # when a reader blocks on its stream (the on-read check)
    started = time.monotonic()
    events = generation_stream(job_id).read(block_ms=300)

    # then it gets the error instead of waiting forever, and the job is failed
    assert [event.kind for event in events] == [ERROR]
    assert time.monotonic() - started < 5
    assert GenerationJob.objects.get(pk=job_id).status == "failed"
    open_stream(job_id).delete()


@pytest.mark.slow
def test_late_completion_after_reaping_does_not_overwrite_failure(stream_mode, smollm, make_engine):
    # given a job the reaper already failed while it was (slowly) running
    job_id = queued_job()
    engine = make_engine(smollm)
    from inference.services import generation_claim, record_outcome

    generation_claim(job_id=job_id, worker="w:1", model="m")
    GenerationJob.objects.filter(pk=job_id).update(started_at=timezone.now() - timedelta(hours=1))
    generation_reap_stale()

    # when its real outcome arrives afterwards
    output = engine.submit(__import__("inference.services", fromlist=["job_request"]).job_request(
        GenerationJob.objects.get(pk=job_id))).result(timeout=120)
    record_outcome(job_id, open_stream(job_id), output)

    # then the job stays failed and the stream has exactly one final event
    assert GenerationJob.objects.get(pk=job_id).status == "failed"
    assert [event.kind for event in open_stream(job_id).read()] == [ERROR]
    open_stream(job_id).delete()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the task body runs in a background thread after commit
def test_embedded_submit_runs_on_the_in_process_engine(settings):
    # given embedded mode (no Redis): the task runs in a thread of this process, on its engine
    settings.REDIS_URL, settings.KEFU_MODE, settings.KEFU_MODEL = None, "embedded", "smollm2-135m"

    # when a request is submitted and its stream followed
    job_id = generation_submit(messages=MESSAGES, params={"temperature": 0, "max_new_tokens": 6})
    events = read_all(open_stream(job_id), timeout_s=300)

    # then the stream ends with done, and the runtime reports the engine ready
    from inference.runtime import generator_state, loaded_generator

    assert events and events[-1].kind == DONE, events[-1:]
    assert GenerationJob.objects.get(pk=job_id).status == "done"
    assert generator_state().status == "ready" and loaded_generator() is not None
    open_stream(job_id).delete()
