"""Redis restarts during traffic: requests in flight fail cleanly, new ones succeed once it is back.

The test runs its own ``redis-server`` on a free port (never the shared one), a web server and an
inference worker pointed at it, stops Redis (SIGTERM) while an answer is streaming, checks what the
customer sees, restarts Redis on the same port and asks again — without restarting anything else.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import http_get
from tests.reliability.faults_support import (
    RedisServer,
    SseReader,
    ask,
    first_token_written,
    read_until_final,
    service_mode_only,
    start_worker_on,
)
from tests.reliability.test_faults_inference import CHITCHAT, OTHER_QUESTION, QUESTION, web_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True),
              service_mode_only("no Redis in embedded mode: cache, broker and token streams live in the process")]


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def wait_generator_ready(base: str, timeout: float) -> float:
    """Seconds until /readyz reports the worker's generator ready again (its heartbeat is back)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if http_get(base + "/readyz")[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"/readyz not 200 within {timeout}s")


def test_redis_restart_fails_requests_in_flight_cleanly_and_serves_new_ones(key_a, own_redis, tmp_path):
    # given a web server and an inference worker on a private Redis, and a customer reading an answer
    from chat.models import Message

    worker = start_worker_on(own_redis.url, ["inference"], tmp_path / "worker.log", pool="threads", concurrency=2,
                             env={"KEFU_MODEL": "smollm2-135m"})
    server = None
    try:
        # a long answer (still streaming when Redis stops), a short greeting afterwards
        server = web_server(tmp_path, own_redis.url, KEFU_WARMUP="1", KEFU_CHAT_ANSWER_TOKENS="400",
                            KEFU_CHAT_CHITCHAT_TOKENS="3")
        wait_generator_ready(server.base, 300)
        status, started, _ = ask(server.base, key_a.public_key, QUESTION, timeout=120)
        assert status == 202 and started["outcome"] == "pending", (started, server.log_path.read_text()[-5000:])
        reader = SseReader(started["stream_url"], read_timeout_s=30)
        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(read_until_final, reader, deadline_s=240)

            # when Redis is stopped once the worker has streamed its first token (the answer still running)
            job_id = str(Message.objects.get(pk=started["message_id"]).inference_job_id)
            first_token_written(own_redis.url, job_id, timeout=240)
            own_redis.stop()
            stopped_at = [time.monotonic()]
            final = reading.result(timeout=120)

        # then the stream in flight ends with an error event (not a cut connection or a hang)
        assert final is not None and final.kind == "error", (final, server.log_path.read_text()[-3000:])
        assert final.data["code"] == "service_unavailable"
        broken_s = final.at - stopped_at[0]
        message = Message.objects.get(pk=started["message_id"])
        assert (message.outcome, message.error_code) == ("failed", "service_unavailable")
        # and a question asked while Redis is down gets a JSON 503, quickly
        asked = time.monotonic()
        status, body, kind = ask(server.base, key_a.public_key, OTHER_QUESTION, timeout=30)
        down_answer_s = time.monotonic() - asked
        assert status == 503 and kind.startswith("application/json"), (status, body)
        assert body["error"]["code"] == "service_unavailable"

        # when Redis comes back on the same port (empty: no persistence)
        own_redis.start()
        try:
            back_s = wait_generator_ready(server.base, 120)
        except TimeoutError:
            pytest.fail(f"worker exit status {worker.process.poll()}:\n{worker.log()[-3000:]}")

        # then a new question is answered by the same web process and worker
        status, again, _ = ask(server.base, key_a.public_key, CHITCHAT, timeout=60)
        assert status == 202 and again["outcome"] == "pending", again
        final = read_until_final(SseReader(again["stream_url"], read_timeout_s=30), deadline_s=180)
        assert final is not None and final.kind == "done", (final, worker.log()[-3000:])
        assert Message.objects.get(pk=again["message_id"]).outcome == "answered"
        assert server.process.poll() is None and worker.process.poll() is None
        print(f"\nRedis stopped → stream error after {broken_s:.2f} s; POST while down → 503 in "
              f"{down_answer_s:.2f} s; Redis back → worker ready again after {back_s:.1f} s")
    finally:
        if server is not None:
            server.stop()
        worker.stop()
