"""The real ASGI server: uvicorn serves health, static files and the admin on loopback."""

import pytest

from tests.conftest import http_get


@pytest.mark.slow
def test_uvicorn_serves_health_static_files_and_admin(start_web_server):
    # given a real uvicorn process in embedded mode
    server = start_web_server()
    # when / then health answers, static files are served by the app itself, and the staff sign-in renders
    status, body, _ = http_get(server.base + "/healthz")
    assert status == 200 and b'"embedded"' in body
    status, body, headers = http_get(server.base + "/static/kefu/site.css")
    assert status == 200 and b"--accent" in body and headers["Content-Type"].startswith("text/css")
    status, body, _ = http_get(server.base + "/staff/login/")
    assert status == 200 and b"csrfmiddlewaretoken" in body
    status, body, _ = http_get(server.base + "/readyz")
    assert status == 503 and body == b'{"status": "not_ready"}'  # details only with the token or a staff login
