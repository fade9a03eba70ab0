"""Backend ``openai`` against a real OpenAI-compatible server on loopback (it wraps the batching engine)."""

from __future__ import annotations

import socket
import time

import pytest

from inference.backends.openai_backend import OpenAIBackend
from inference.config import EngineConfig
from inference.params import GenerationRequest, SamplingParams
from tests.inference.openai_server import OpenAICompatibleServer

pytestmark = pytest.mark.slow
QUESTION = ({"role": "user", "content": "What is the capital of France?"},)


@pytest.fixture
def server(smollm, make_engine):
    with OpenAICompatibleServer(make_engine(smollm), model="smollm2-135m", api_key="sk-test") as running:
        yield running


def backend_for(base_url: str, **overrides) -> OpenAIBackend:
    config = dict(backend="openai", model="smollm2-135m", openai_base_url=base_url, openai_api_key="sk-test",
                  timeout_s=120.0)
    return OpenAIBackend(EngineConfig(**{**config, **overrides}))


def greedy(max_new_tokens: int = 12, **params) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, **params)


def test_streamed_completion_equals_the_engine_output(server, smollm, make_engine):
    # given the same greedy request run directly on an engine
    direct = make_engine(smollm).submit(GenerationRequest("direct", QUESTION, greedy())).result(timeout=120)

    # when it goes through the openai backend to the server
    handle = backend_for(server.base_url).submit(GenerationRequest("remote", QUESTION, greedy()))
    streamed = "".join(handle)
    output = handle.result(timeout=120)

    # then the text, token counts and finish reason are the engine's, streamed in pieces
    assert streamed == output.text == direct.text
    assert (output.prompt_tokens, output.completion_tokens) == (direct.prompt_tokens, direct.completion_tokens)
    assert output.finish_reason == direct.finish_reason
    assert 0 < output.ttft_ms <= output.total_ms


def test_stop_sequences_and_length_are_honoured(server):
    backend = backend_for(server.base_url)
    stopped = backend.submit(GenerationRequest("s", QUESTION, greedy(stop=("Paris",)))).result(timeout=120)
    short = backend.submit(GenerationRequest("l", QUESTION, greedy(max_new_tokens=2))).result(timeout=120)
    assert stopped.finish_reason == "stop" and "Paris" not in stopped.text and stopped.text
    assert (short.finish_reason, short.completion_tokens) == ("length", 2)


def test_cancel_closes_the_stream_and_the_server_stops_generating(server):
    # given a long remote generation that has started streaming
    handle = backend_for(server.base_url).submit(
        GenerationRequest("c", ({"role": "user", "content": "Write a long story about a dragon."},),
                          greedy(max_new_tokens=300)))
    pieces = handle.stream(poll_s=0.05)
    while not next(pieces):
        pass

    # when it is cancelled
    handle.cancel()
    output = handle.result(timeout=60)

    # then it ends as cancelled well short of 300 tokens, and the server saw the client go
    assert output.finish_reason == "cancelled" and output.completion_tokens < 300
    deadline = time.monotonic() + 30
    while not server.cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.cancelled


@pytest.mark.parametrize("overrides, message", [
    ({"openai_api_key": "sk-wrong"}, "HTTP 401"),
    ({"model": "gpt-17"}, "does not exist"),
])
def test_server_errors_fail_the_request_with_the_server_message(server, overrides, message):
    output = backend_for(server.base_url, **overrides).submit(GenerationRequest("e", QUESTION, greedy())).result(10)
    assert output.finish_reason == "error" and message in output.error


def test_unreachable_server_fails_the_request():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output = backend_for(f"http://127.0.0.1:{port}/v1", request_timeout_s=2.0).submit(
        GenerationRequest("down", QUESTION, greedy())).result(timeout=30)
    assert output.finish_reason == "error" and "ConnectError" in output.error


def test_missing_base_url_is_a_clear_error():
    with pytest.raises(ValueError, match="KEFU_OPENAI_BASE_URL"):
        backend_for("")


@pytest.mark.django_db
def test_a_job_runs_end_to_end_on_the_configured_openai_backend(server, settings):
    # given settings that select the openai backend pointing at the loopback server
    from inference.config import engine_config
    from inference.models import GenerationJob
    from inference.runtime import build_generator
    from inference.services import generation_run
    from inference.stream import DONE, open_stream, read_all

    settings.REDIS_URL = None
    settings.KEFU_MODEL_BACKEND, settings.KEFU_MODEL = "openai", "smollm2-135m"
    settings.KEFU_OPENAI_BASE_URL, settings.KEFU_OPENAI_API_KEY = server.base_url, "sk-test"
    generator = build_generator(engine_config(), models_dir=settings.KEFU_DATA_DIR / "models")
    job = GenerationJob.objects.create(messages=list(QUESTION), temperature=0.0, top_p=1.0, max_new_tokens=8)

    # when the task body runs the job on it
    status = generation_run(job_id=job.pk, generator=generator)

    # then the job is done, streamed, and records what the server reported
    events = read_all(open_stream(job.pk), timeout_s=5)
    job.refresh_from_db()
    assert isinstance(generator, OpenAIBackend)
    assert status == "done" and events[-1].kind == DONE and job.text == events[-1].data["text"] != ""
    assert job.prompt_tokens > 0 and job.completion_tokens > 0
    open_stream(job.pk).delete()
