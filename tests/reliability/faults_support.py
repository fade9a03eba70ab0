"""Helpers for the fault tests: real processes started and broken on purpose.

- :func:`service_mode_only` skips a test in embedded mode with the reason the fault does not exist there;
- :class:`RedisServer` is a private ``redis-server`` on a free port that a test may stop and restart
  (the shared Redis on 6379 is never touched);
- :class:`DelayedProxy` is a TCP proxy that turns connections away for its first seconds, standing in
  for a database that comes up late;
- :func:`post_json` and :func:`sse_events` are the customer's side of the chat API, each with a timeout,
  so a hung server fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPConnection
from urllib.parse import urlsplit

import pytest

from tests.conftest import free_port

ORIGIN = "https://shop.example.com"


def service_mode_only(reason: str):
    """Skip unless the suite runs in service mode (REDIS_URL set), saying why the fault needs it."""
    return pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason=reason)


def post_json(url: str, body: dict, headers: dict | None = None, *, timeout: float = 60.0) -> tuple[int, dict, str]:
    """Status, parsed JSON body (or {}) and content type of a POST; 4xx/5xx returned, not raised."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status, kind = response.read(), response.status, response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        raw, status, kind = error.read(), error.code, error.headers.get("Content-Type", "")
    try:
        return status, json.loads(raw or b"{}"), kind
    except ValueError:
        return status, {"raw": raw[:500].decode(errors="replace")}, kind


def ask(base: str, key: str, text: str, *, timeout: float = 60.0) -> tuple[int, dict, str]:
    """The widget's POST of one question."""
    return post_json(f"{base}/api/v1/chat/messages", {"text": text},
                     {"X-Kefu-Key": key, "Origin": ORIGIN}, timeout=timeout)


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event as the browser sees it, with the monotonic time it arrived."""

    kind: str
    data: dict
    id: str | None
    at: float


@dataclass
class SseReader:
    """Reads one SSE response event by event; every socket read has a timeout, the whole read a deadline."""

    url: str
    headers: dict = field(default_factory=dict)
    read_timeout_s: float = 10.0
    status: int = 0
    events: list[SseEvent] = field(default_factory=list)

    def __iter__(self):
        parts = urlsplit(self.url)
        connection = HTTPConnection(parts.hostname, parts.port, timeout=self.read_timeout_s)
        try:
            connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                               headers={"Accept": "text/event-stream", "Origin": ORIGIN, **self.headers})
            response = connection.getresponse()
            self.status = response.status
            if response.status != 200:
                return
            kind, data, event_id = "message", [], None
            while True:
                line = response.readline()
                if not line:
                    return
                line = line.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line == "" and data:
                    event = SseEvent(kind, json.loads("\n".join(data)), event_id, time.monotonic())
                    self.events.append(event)
                    yield event
                    kind, data, event_id = "message", [], None
        finally:
            connection.close()


def first_token_written(url: str, job_id: str, timeout: float) -> None:
    """Until the job's Redis stream holds an event (read straight from Redis, not through the web process)."""
    import redis

    from inference.stream import KEY_PREFIX

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while client.xlen(KEY_PREFIX + job_id) == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no token of job {job_id} after {timeout}s")
        time.sleep(0.05)
    client.close()


def read_until_final(reader: SseReader, *, deadline_s: float, on_token=None) -> SseEvent | None:
    """Read until ``done``/``error`` or the deadline; calls ``on_token(event)`` for each token."""
    give_up = time.monotonic() + deadline_s
    for event in reader:
        if event.kind in ("done", "error"):
            return event
        if event.kind == "token" and on_token is not None:
            on_token(event)
        if time.monotonic() > give_up:
            return None
    return None


class RedisServer:
    """A private redis-server (no persistence) on a free loopback port, stoppable and restartable."""

    def __init__(self, log_dir):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.binary, self.port, self.log_dir = binary, free_port(), log_dir
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        log = (self.log_dir / f"redis-{self.port}.log").open("a")
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"], stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout)

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class DelayedProxy:
    """A TCP proxy to ``target`` that turns connections away for ``delay_s`` seconds, then forwards them.

    The window starts when the first connection arrives (not when the proxy starts), so the
    test does not depend on how long the process under test takes to import: its first
    ``delay_s`` seconds of connection attempts are reset, as by a database still starting.
    """

    def __init__(self, target: tuple[str, int], *, delay_s: float):
        self.target, self.delay_s, self.port = target, delay_s, free_port()
        self.first_attempt_at: float | None = None
        self.available_at: float | None = None
        self.turned_away = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))

    def start(self) -> DelayedProxy:
        self._server.listen(16)
        self._server.settimeout(0.2)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            now = time.monotonic()
            self.first_attempt_at = self.first_attempt_at or now
            if now - self.first_attempt_at < self.delay_s:
                self.turned_away += 1
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()  # a reset, as from a server that is not up yet
                continue
            self.available_at = self.available_at or now
            upstream = socket.create_connection(self.target, timeout=5)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(source, sink), daemon=True).start()


def pipe(source: socket.socket, sink: socket.socket) -> None:
    source.settimeout(None)
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


def start_worker_on(redis_url: str, queues: list[str], log_path, *, pool: str = "solo", concurrency: int = 1,
                    env: dict | None = None, timeout: float = 90.0):
    """A real Celery worker on the test database and the given Redis (``start_celery_worker`` always uses
    the suite's Redis); the caller stops it."""
    import sys

    from tests.conftest import ROOT, CeleryWorker, database_url_of_this_process, subprocess_env

    name = f"faults-{os.getpid()}-{time.monotonic_ns()}@%h"
    command = [sys.executable, "-m", "celery", "-A", "kefu", "worker", "-Q", ",".join(queues), "-P", pool,
               "-c", str(concurrency), "-n", name, "--loglevel", "INFO",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]
    child_env = subprocess_env(**{"REDIS_URL": redis_url, "DATABASE_URL": database_url_of_this_process(),
                                  **(env or {})})
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    worker = CeleryWorker(process, log_path, name)
    try:
        worker.wait_ready(timeout)
    except Exception:
        worker.stop()
        raise
    return worker
