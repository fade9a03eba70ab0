"""The real ASGI server: uvicorn serves health, static files and the admin on loopback."""

import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import PYTHON, ROOT, subprocess_env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> tuple[int, bytes, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = subprocess_env(KEFU_DATA_DIR=str(tmp_path / "data"), KEFU_WARMUP="0", REDIS_URL=None, DATABASE_URL=None)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True,
                   timeout=120)
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([PYTHON, "-m", "uvicorn", "kefu.asgi:application", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if get(base + "/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(timeout=15)


@pytest.mark.slow
def test_uvicorn_serves_health_static_files_and_admin(server):
    # when the server is up
    status, body, _ = get(server + "/healthz")
    # then health answers, static files are served by the app itself, and the admin login renders
    assert status == 200 and b'"embedded"' in body
    status, body, headers = get(server + "/static/kefu/site.css")
    assert status == 200 and b"--accent" in body and headers["content-type"].startswith("text/css")
    status, body, _ = get(server + "/admin/login/")
    assert status == 200 and b"csrfmiddlewaretoken" in body
    status, body, _ = get(server + "/readyz")
    assert status == 503 and b'"database": {"ok": true' in body
