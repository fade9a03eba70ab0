"""Shared fixtures: the real services (Redis, PostgreSQL, a Celery worker) and the project root.

Service fixtures skip with a message saying what to start when a service does not
answer; on this machine and in CI they all run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


def port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def staff_member(username: str, *, roles: tuple[str, ...] | None = None, **fields):
    """A user with Kefu's staff roles (all three unless ``roles`` names some), as an operator gives access."""
    from django.contrib.auth.models import Group, User

    from kefu.roles import ROLES, roles_ensure

    roles_ensure()
    user = User.objects.create_user(username, **fields)
    user.groups.add(*Group.objects.filter(name__in=roles or tuple(ROLES)))
    return user


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture
def data_dir(settings, tmp_path) -> Iterator[Path]:
    """Index files and uploads under a per-test temp dir, no resume-on-start and no warm-up threads; the
    indexes this process cached are forgotten before and after. Each app's conftest turns it on for its tests."""
    from kb.indexing import forget_cached_indexes

    settings.KEFU_DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = tmp_path / "data" / "uploads"
    settings.KEFU_KB_RESUME_ON_START = False
    settings.KEFU_WARMUP = False
    forget_cached_indexes()
    yield settings.KEFU_DATA_DIR
    forget_cached_indexes()


@pytest.fixture(scope="session")
def embedder():
    """The process-wide embedding model, loaded once for the whole session.

    One torch thread: the test machine is shared, and two spinning threads on a loaded
    2-core box are ten times slower than one.
    """
    import torch

    from kb.embedding import get_embedder

    torch.set_num_threads(1)
    return get_embedder()


@pytest.fixture
def tiny_registered(settings, tmp_path_factory, embedder):
    """A tiny random sentence-transformers model (tests/kb/tiny_models.py) registered as "tiny-a" in
    ``KEFU_EMBEDDING_MODELS``; its encoder is dropped from the process's LRU afterwards."""
    from kb.embedding import forget_encoder
    from tests.kb.tiny_models import tiny_model_dir

    root = tmp_path_factory.getbasetemp() / "tiny-models"
    root.mkdir(exist_ok=True)
    settings.KEFU_EMBEDDING_MODELS = {"tiny-a": str(tiny_model_dir(root, seed=0))}
    yield "tiny-a"
    forget_encoder("tiny-a")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real Redis for tests: REDIS_URL when the suite runs in service mode, else DB 15 on loopback."""
    url = os.environ.get("REDIS_URL") or DEFAULT_TEST_REDIS_URL
    parts = urlsplit(url)
    if not port_answers(parts.hostname or "127.0.0.1", parts.port or 6379):
        pytest.skip(f"Redis does not answer at {url}: start redis-server on 127.0.0.1:6379 to run this test")
    return url


@pytest.fixture
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def small_demo_embedder(settings):
    """The demo base embeds with the small bundled model in tests (its own, all-mpnet-base-v2, is ~5× slower to
    build and tune with; tests/kb/test_demo.py checks the setting is what the demo names). KEFU_DEMO_EMBEDDING_MODEL
    in the environment overrides it."""
    if "KEFU_DEMO_EMBEDDING_MODEL" not in os.environ:
        settings.KEFU_DEMO_EMBEDDING_MODEL = "all-minilm-l6-v2"


@pytest.fixture(autouse=True)
def fresh_intent_classifiers():
    """Intent classifiers are cached per (base id, index version id); a rolled-back test database hands
    the same ids to the next test's bases, which may embed with another model."""
    from chat.lookups import forget_all
    from chat.pipeline.cache import hits_forget
    from chat.pipeline.intent import forget_classifiers
    from kb.retrieval.glossary import forget_glossaries
    from kb.retrieval.spelling import forget_spellers

    forget_classifiers()
    forget_all()  # the web's remembered keys and profiles: the same ids may name other rows now
    hits_forget()  # answer-cache hits counted but not written: their entry ids may name other rows now
    forget_spellers()  # spellers and glossaries are kept per (base id, index version id) too
    forget_glossaries()
    yield
    forget_classifiers()
    forget_all()
    hits_forget()


@pytest.fixture(scope="session", autouse=True)
def database_pools_closed(django_db_setup, django_db_blocker):
    """PostgreSQL connection pools closed before the test database is dropped (an open pooled connection
    would keep it in use)."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            if hasattr(connection, "close_pool"):
                connection.close_pool()


@pytest.fixture(autouse=True)
def request_thread_database_work(settings):
    """The chat API's database work on the request's own thread (asgiref's thread-sensitive mode), as
    ``KEFU_WEB_DB_THREADS=0`` makes it: a test's rows live in its open transaction, which the reused
    threads of a real web process could not see. Processes a test starts (the load test) use the threads."""
    settings.KEFU_WEB_DB_THREADS = 0


@pytest.fixture
def isolated_cache(settings):
    """The Django cache, empty for this test, without touching anybody else's keys.

    Local memory (embedded mode) is this process's own and is simply cleared. On Redis
    (service mode) ``cache.clear()`` would FLUSHDB — token streams, heartbeats, queues and
    other test runs sharing the DB — so the test gets its own key prefix instead, and the
    keys under it are deleted afterwards.
    """
    from django.core.cache import cache

    config = settings.CACHES["default"]
    if not config["BACKEND"].endswith("RedisCache"):
        cache.clear()
        yield cache
        return
    import redis

    prefix = f"kefu-test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {**settings.CACHES, "default": {**config, "KEY_PREFIX": prefix}}
    yield cache
    client = redis.Redis.from_url(config["LOCATION"])
    try:
        for key in client.scan_iter(match=f"{prefix}:*", count=500):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL server URL (the database itself may not exist)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(url)
    if not port_answers(parts.hostname or "127.0.0.1", parts.port or 5432):
        pytest.skip(f"PostgreSQL does not answer at {parts.hostname}:{parts.port or 5432}: start it to run this test")
    return url


def subprocess_env(**overrides: str) -> dict[str, str]:
    """The environment for a child Kefu process: this one's, plus overrides (value None drops a key)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = str(ROOT)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class CeleryWorker:
    """A real ``celery -A kefu worker`` subprocess, stopped when the test ends."""

    def __init__(self, process: subprocess.Popen, log_path: Path, name: str):
        self.process, self.log_path, self.name = process, log_path, name

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.log()}")
            if " ready." in self.log():
                return
            time.sleep(0.2)
        raise TimeoutError(f"celery worker not ready after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def database_url_of_this_process() -> str:
    """A DATABASE_URL naming the database this test process uses (the test database, once set up)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database['NAME']}"
    user = database.get("USER") or ""
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{database.get('HOST') or '127.0.0.1'}:{database.get('PORT') or 5432}/{database['NAME']}"


@pytest.fixture
def start_celery_worker(redis_url, tmp_path, django_db_setup, django_db_blocker):
    """Start real Celery workers on the test database: ``start_celery_worker(["ingest"], env={...})``.

    Tests whose worker reads rows the test wrote need ``@pytest.mark.django_db(transaction=True)``
    so the rows are committed where the worker can see them.
    """
    workers: list[CeleryWorker] = []

    def start(queues: list[str], *, pool: str = "solo", concurrency: int = 1, env: dict | None = None,
              timeout: float = 90.0) -> CeleryWorker:
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        log_path = tmp_path / f"worker-{len(workers)}.log"
        command = [PYTHON, "-m", "celery", "-A", "kefu", "worker", "-Q", ",".join(queues), "-P", pool,
                   "-c", str(concurrency), "-n", name, "--loglevel", "INFO", "--without-gossip",
                   "--without-mingle", "--without-heartbeat"]
        child_env = subprocess_env(REDIS_URL=redis_url, DATABASE_URL=database_url_of_this_process(),
                                   **(env or {}))
        with log_path.open("w") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT)
        worker = CeleryWorker(process, log_path, name)
        workers.append(worker)
        worker.wait_ready(timeout)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_get(url: str, headers: dict | None = None) -> tuple[int, bytes, object]:
    """Status, body and headers of a GET on loopback (4xx/5xx returned, not raised)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


class WebServer:
    """A real uvicorn serving kefu.asgi on a free loopback port, migrated first."""

    def __init__(self, data_dir: Path, *, workers: int = 1, **env: str | None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = subprocess_env(**{"KEFU_DATA_DIR": str(data_dir), "KEFU_WARMUP": "0", "REDIS_URL": None,
                                     "DATABASE_URL": None, **env})
        self.log_path = data_dir.parent / f"uvicorn-{self.port}.log"
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env,
                       check=True, timeout=180)
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "uvicorn", "kefu.asgi:application", "--port", str(self.port), "--workers", str(workers)],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if http_get(self.base + "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"uvicorn not healthy after {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def start_web_server(tmp_path):
    """Start real uvicorn servers: ``start_web_server(workers=2, KEFU_MODEL="tiny-olmoe")``."""
    servers: list[WebServer] = []

    def start(*, workers: int = 1, **env: str | None) -> WebServer:
        server = WebServer(tmp_path / f"data-{len(servers)}", workers=workers, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --- browser tests: Debian's Chromium driven by Playwright, never a downloaded browser ---------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)")


@pytest.fixture
def live_asgi(transactional_db, settings):
    """uvicorn serving kefu's ASGI app on loopback from a thread of this process; yields its base URL.

    In-process (unlike ``start_web_server``) so a test can use the test database and stand-ins
    set up in this process.
    """
    import threading

    import uvicorn
    from django.core.asgi import get_asgi_application

    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(get_asgi_application(), host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    """Debian's headless Chromium under Playwright (sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def off_loop(function, *args):
    """Run a database call in a fresh thread: Playwright's sync API keeps an event loop in this one."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def call():
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()
