"""The search backend at start-up and on /readyz: configured but unreachable stops a process with one line."""

from __future__ import annotations

import pytest

from tests.kefu.test_preflight import SERVE, WORKER, closed_port, error_lines, run


@pytest.mark.parametrize("command", [SERVE, WORKER], ids=["serve", "worker"])
def test_milvus_configured_but_down_fails_with_one_line(tmp_path, command):
    # given KEFU_SEARCH_BACKEND=milvus and a URI nothing listens on / when a process starts
    uri = f"http://127.0.0.1:{closed_port()}"
    result = run(command, tmp_path, KEFU_SEARCH_BACKEND="milvus", KEFU_MILVUS_URI=uri, KEFU_MILVUS_TIMEOUT_S="2")
    # then it exits 2 with one line naming the backend, the address and what to do
    assert result.returncode == 2, result.stderr[-2000:]
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr[-2000:]
    assert "KEFU_SEARCH_BACKEND=milvus but the search backend cannot be used" in lines[0] and uri in lines[0]
    assert "Traceback" not in result.stderr


def test_milvus_without_a_uri_fails_with_one_line(tmp_path):
    result = run(SERVE, tmp_path, KEFU_SEARCH_BACKEND="milvus", KEFU_MILVUS_URI="")
    assert result.returncode == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "KEFU_SEARCH_BACKEND=milvus needs KEFU_MILVUS_URI" in lines[0], result.stderr[-2000:]


def readyz(client, settings):
    """/readyz as the operator's probe sees it: with the metrics bearer token."""
    settings.KEFU_METRICS_TOKEN = "probe-token"
    return client.get("/readyz", HTTP_AUTHORIZATION="Bearer probe-token")


@pytest.mark.django_db
def test_readyz_names_the_search_backend_and_its_state(client, settings, tmp_path):
    from kb.search_backends import forget_backends

    # given the local backend / then /readyz names it in its details
    body = readyz(client, settings).json()
    assert body["search_backend"] == {"backend": "local", "state": "up"}
    assert body["components"]["search_backend"]["ok"] is True
    assert "search_backend" not in client.get("/readyz").json()  # the public sees only ready or not
    # given Milvus configured at an address nothing answers on
    settings.KEFU_SEARCH_BACKEND = "milvus"
    settings.KEFU_MILVUS_URI = f"http://127.0.0.1:{closed_port()}"
    settings.KEFU_MILVUS_TIMEOUT_S = 1.0
    forget_backends()
    try:
        response = readyz(client, settings)
    finally:
        forget_backends()
    # then the process is not ready and says which backend is down
    assert response.status_code == 503
    assert response.json()["search_backend"] == {"backend": "milvus", "state": "down"}


@pytest.mark.django_db
def test_readyz_reports_milvus_up(client, settings, tmp_path):
    from kb.search_backends import forget_backends

    settings.KEFU_SEARCH_BACKEND = "milvus"
    settings.KEFU_MILVUS_URI = str(tmp_path / "milvus.db")
    settings.KEFU_MODE = "embedded"  # a Lite file: one process only
    forget_backends()
    try:
        body = readyz(client, settings).json()
    finally:
        forget_backends()
    assert body["search_backend"] == {"backend": "milvus", "state": "up"}


def test_a_milvus_lite_file_is_refused_in_service_mode(settings, tmp_path):
    from kefu.preflight import check_search_backend

    # given service mode (web and workers are separate processes) and a Lite file as the Milvus
    settings.KEFU_MODE = "service"
    settings.KEFU_SEARCH_BACKEND = "milvus"
    settings.KEFU_MILVUS_URI = str(tmp_path / "milvus.db")
    # then the check fails and says how to serve it instead
    status = check_search_backend()
    assert not status.ok and "only one process may open" in status.detail and "milvus_lite server" in status.detail
