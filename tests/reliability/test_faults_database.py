"""The database is briefly unavailable when the web process starts.

A TCP proxy in front of the real PostgreSQL resets every connection during the 2 s after the first
one: the process says on stderr that it is retrying, with backoff, and comes up. With nothing
listening at all it gives up
after ``KEFU_DATABASE_WAIT`` seconds with exactly one line and exit status 2. (Bad URLs and the
other start-up errors are covered by tests/kefu/test_preflight.py.)
"""

from __future__ import annotations

import subprocess
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import PYTHON, ROOT, free_port, http_get, subprocess_env
from tests.reliability.faults_support import DelayedProxy

pytestmark = [pytest.mark.slow]
RETRY_LINE = "the database is not reachable yet"


def start_web(tmp_path, database_url: str, **env: str) -> tuple[subprocess.Popen, int, object]:
    port = free_port()
    stderr = (tmp_path / "web.err").open("w+")
    process = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", "kefu.asgi:application", "--port", str(port)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=stderr,
        env=subprocess_env(KEFU_DATA_DIR=str(tmp_path / "data"), REDIS_URL=None, DATABASE_URL=database_url,
                           KEFU_WARMUP="0", KEFU_KB_RESUME_ON_START="0", **env))
    return process, port, stderr


def stderr_of(handle) -> str:
    handle.flush()
    handle.seek(0)
    return handle.read()


def wait_healthy(process: subprocess.Popen, port: int, timeout: float) -> float | None:
    """Monotonic time /healthz first answered 200; None if the process exited or the time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.1)
    return None


def through(proxy: DelayedProxy, postgres_url: str) -> str:
    parts = urlsplit(postgres_url)
    auth = f"{parts.username}@" if parts.username else ""
    return f"postgres://{auth}127.0.0.1:{proxy.port}/postgres"


def test_a_database_that_answers_after_2_s_is_waited_for(postgres_url, tmp_path):
    # given PostgreSQL reachable only through a proxy that turns connections away for 2 s
    parts = urlsplit(postgres_url)
    proxy = DelayedProxy((parts.hostname or "127.0.0.1", parts.port or 5432), delay_s=2.0).start()
    try:
        # when the web process starts against it
        process, port, stderr = start_web(tmp_path, through(proxy, postgres_url))
        try:
            healthy_at = wait_healthy(process, port, timeout=90)
            log = stderr_of(stderr)
            # then it comes up once the database answers
            assert healthy_at is not None, log[-3000:]
            assert proxy.turned_away >= 1 and proxy.available_at is not None
            # and it said on stderr that it was retrying, with growing delays
            retries = [line for line in log.splitlines() if RETRY_LINE in line]
            assert retries and "retrying in 0.5 s" in retries[0], log[-3000:]
            assert "configuration error" not in log
            print(f"\ndatabase late by 2 s: {len(retries)} retries announced; healthy "
                  f"{healthy_at - proxy.available_at:.1f} s after the database answered")
        finally:
            process.terminate()
            process.wait(timeout=15)
    finally:
        proxy.close()


def test_a_database_that_never_answers_ends_the_process_with_one_line(postgres_url, tmp_path):
    # given a database port where nothing ever listens, and a 3 s wait
    parts = urlsplit(postgres_url)
    auth = f"{parts.username}@" if parts.username else ""
    started = time.monotonic()
    # when the web process starts
    process, _, stderr = start_web(tmp_path, f"postgres://{auth}127.0.0.1:{free_port()}/postgres",
                                   KEFU_DATABASE_WAIT="3")
    try:
        code = process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    elapsed = time.monotonic() - started
    log = stderr_of(stderr)
    # then it retried for about the wait, then exited 2 with exactly one line saying why
    assert code == 2, log[-3000:]
    errors = [line for line in log.splitlines() if "configuration error" in line]
    assert len(errors) == 1 and "the database is not reachable (postgresql:" in errors[0], log[-3000:]
    assert [line for line in log.splitlines() if RETRY_LINE in line], log[-3000:]
    assert "Traceback" not in log
    assert elapsed >= 1.5
    print(f"\ndatabase never answers (KEFU_DATABASE_WAIT=3): exit 2 after {elapsed:.1f} s")
