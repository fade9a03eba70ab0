"""Generation faults seen from the customer's side: a real web server, a real worker, the SSE stream.

- the inference worker is SIGKILLed mid-stream: the reader gets an ``error`` event within the
  heartbeat expiry plus the stall time, the message ends ``failed``, and no token reached it twice;
- a generation that exceeds KEFU_GENERATION_TIMEOUT is stopped and reported (``error`` with code
  ``timeout``, job failed), and the engine's only slot answers the next request.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from inference.stream import parse_id
from tests.conftest import ROOT, WebServer, database_url_of_this_process, free_port, http_get
from tests.reliability.faults_support import (
    SseReader,
    ask,
    first_token_written,
    read_until_final,
    service_mode_only,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUESTION = "Do I need a permit before drilling for a ground source heat pump?"
OTHER_QUESTION = "How deep is the borehole for a ground source heat pump?"
LONG_QUESTION = ("Explain step by step and in detail everything I must do before drilling for a ground source heat "
                 "pump: the permit, how long drilling takes, how deep the borehole is, and the warranty.")
CHITCHAT = "Hey, how are you?"  # an intent example of chitchat: a short generated reply


def shared_models_dir() -> Path:
    """Where this checkout keeps the converted bundled model (reused instead of converting again)."""
    return Path(os.environ.get("KEFU_DATA_DIR") or ROOT / "data") / "models"


def web_server(tmp_path, redis_url: str | None, **env: str) -> WebServer:
    """A uvicorn subprocess on the test database (service mode when redis_url is given)."""
    data_dir = tmp_path / "web-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    if shared_models_dir().is_dir() and not (data_dir / "models").exists():
        (data_dir / "models").symlink_to(shared_models_dir(), target_is_directory=True)
    return WebServer(data_dir, REDIS_URL=redis_url, DATABASE_URL=database_url_of_this_process(), **env)


def requests_running(metrics_url: str) -> float | None:
    """The engine's kefu_num_requests_running gauge (vLLM's num_requests_running), or None if not exported yet."""
    status, body, _ = http_get(metrics_url)
    for line in body.decode(errors="replace").splitlines() if status == 200 else ():
        if line.startswith("kefu_num_requests_running "):
            return float(line.split()[1])
    return None


def wait_for_idle_engine(metrics_url: str, timeout: float) -> float:
    """The monotonic time the engine reported no running request."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests_running(metrics_url) == 0:
            return time.monotonic()
        time.sleep(0.5)
    raise TimeoutError(f"the engine still runs a request after {timeout}s: {requests_running(metrics_url)}")


def wait_ready(server: WebServer, timeout: float = 300.0) -> None:
    """Until /readyz says the generator is loaded (the model loads once per process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body, _ = http_get(server.base + "/readyz")
        if status == 200:
            return
        time.sleep(1)
    raise TimeoutError(f"not ready after {timeout}s: {body[-500:]!r}\n{server.log_path.read_text()[-3000:]}")


@pytest.fixture
def stopped_servers():
    servers: list[WebServer] = []
    yield servers
    for server in servers:
        server.stop()


@service_mode_only("no separate inference worker in embedded mode: the engine is a thread of the web process")
def test_a_worker_killed_mid_stream_ends_the_customers_stream_with_an_error(
        key_a, redis_url, start_celery_worker, tmp_path, stopped_servers):
    # given a web server and an inference worker (heartbeat expiring 2 s after its last write)
    from chat.models import Message
    from inference.models import GenerationJob

    worker = start_celery_worker(["inference"], pool="threads", concurrency=2,
                                 env={"KEFU_MODEL": "smollm2-135m", "KEFU_INFERENCE_HEARTBEAT_TTL": "2"})
    server = web_server(tmp_path, redis_url, KEFU_GENERATION_STALL_SECONDS="1", KEFU_CHAT_ANSWER_TOKENS="400")
    stopped_servers.append(server)
    # and a customer whose question goes to generation and who reads its stream
    status, started, _ = ask(server.base, key_a.public_key, QUESTION, timeout=120)
    assert status == 202 and started["outcome"] == "pending", started
    reader = SseReader(started["stream_url"], read_timeout_s=30)
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read_until_final, reader, deadline_s=300)

        # when the worker is SIGKILLed once it has streamed its first token (read straight from Redis: the
        # web side's sensitive-text masker may hold the first words back from the customer)
        job_id = str(Message.objects.get(pk=started["message_id"]).inference_job_id)
        first_token_written(redis_url, job_id, timeout=300)
        os.kill(worker.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        worker.process.wait(10)
        final = reading.result(timeout=120)

    # then the stream ends with an error event soon after the kill, not a hang
    assert final is not None and final.kind == "error", (final, server.log_path.read_text()[-3000:])
    assert final.data["code"] == "worker_lost"
    noticed_s = final.at - killed_at
    print(f"\nworker SIGKILL → customer's error event: {noticed_s:.1f} s (heartbeat TTL 2 s, stall 1 s)")
    assert noticed_s < 20
    tokens = [event for event in reader.events if event.kind == "token" and event.id]
    # and no token arrived twice or out of order
    ids = [parse_id(event.id) for event in tokens]
    assert ids == sorted(set(ids))
    # and the message is failed (never left generating), the job too
    message = Message.objects.get(pk=started["message_id"])
    assert (message.outcome, message.error_code) == ("failed", "worker_lost")
    job = GenerationJob.objects.get(pk=message.inference_job_id)
    assert (job.status, job.error_code) == ("failed", "worker_lost")


def test_a_generation_past_its_time_limit_is_stopped_and_the_slot_serves_the_next(
        key_a, redis_url, start_celery_worker, tmp_path, stopped_servers):
    # given a generator with one batch slot and a 1 s time limit (a worker in service mode, the web
    # process's own engine in embedded mode): less than a prefill and a short answer take on this CPU
    from chat.models import Message
    from inference.models import GenerationJob

    limits = {"KEFU_GENERATION_TIMEOUT": "1", "KEFU_MAX_BATCH": "1", "KEFU_MODEL": "smollm2-135m"}
    service = bool(os.environ.get("REDIS_URL"))
    if service:
        port = free_port()
        start_celery_worker(["inference"], pool="threads", concurrency=2,
                            env={**limits, "KEFU_INFERENCE_METRICS_PORT": str(port)})
    server = web_server(tmp_path, redis_url if service else None, KEFU_WARMUP="1", KEFU_CHAT_ANSWER_TOKENS="2000",
                        KEFU_MAX_NEW_TOKENS="2000", KEFU_CHAT_CHITCHAT_TOKENS="3", **limits)
    stopped_servers.append(server)
    metrics_url = f"http://127.0.0.1:{port}/metrics" if service else server.base + "/metrics"
    wait_ready(server)

    # when a customer asks for a long answer
    status, started, _ = ask(server.base, key_a.public_key, LONG_QUESTION, timeout=120)
    assert status == 202 and started["outcome"] == "pending", started
    asked_at = time.monotonic()
    final = read_until_final(SseReader(started["stream_url"], read_timeout_s=30), deadline_s=120)

    # then the stream ends with a timeout error, and the job and the message are failed
    assert final is not None and final.kind == "error", final
    assert final.data["code"] == "timeout", final.data
    message = Message.objects.get(pk=started["message_id"])
    assert (message.outcome, message.error_code) == ("failed", "timeout")
    job = GenerationJob.objects.get(pk=message.inference_job_id)
    print(f"\n1 s generation limit → customer's error event {final.at - asked_at:.1f} s after the POST returned "
          f"(job: queue {job.queue_ms} ms, TTFT {job.ttft_ms} ms, total {job.total_ms} ms, "
          f"{job.completion_tokens} tokens)")
    assert (job.status, job.finish_reason, job.error_code) == ("failed", "timeout", "timeout")

    # and the engine's only slot is freed (the step it could not interrupt ends, the row is dropped)
    freed_s = wait_for_idle_engine(metrics_url, timeout=180) - final.at
    print(f"engine slot free again {freed_s:.1f} s after the customer's timeout event")
    # and the next request runs in it: a short generated greeting ends answered (or, when the CPU is so
    # loaded that even its prefill overruns the limit, stopped again as a timeout — never stuck)
    status, again, _ = ask(server.base, key_a.public_key, CHITCHAT, timeout=120)
    assert status == 202 and again["outcome"] == "pending", again
    final = read_until_final(SseReader(again["stream_url"], read_timeout_s=30), deadline_s=120)
    assert final is not None, server.log_path.read_text()[-3000:]
    assert final.kind == "done" or final.data["code"] == "timeout", final
    outcome = Message.objects.get(pk=again["message_id"]).outcome
    assert outcome == ("answered" if final.kind == "done" else "failed")
    print(f"the next request (a greeting) ended {outcome}")
