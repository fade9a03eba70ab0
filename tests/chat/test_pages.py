"""The public demo page /chat/demo/ (issue 16, item 3): off under production settings, a key only from
``demo_setup``, no database writes on a visit, and never another knowledge base."""

from __future__ import annotations

import io
import subprocess

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import PYTHON, ROOT, subprocess_env

WRITES = ("insert", "update", "delete")


def writes_of(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().lower().startswith(WRITES)]


@pytest.fixture(autouse=True)
def demo_hosts(settings):
    settings.ALLOWED_HOSTS = ["testserver", "kefu.example.net"]


@pytest.fixture
def demo_base(db, embedder, monkeypatch, tmp_path):
    """The demo base as ``demo_setup`` builds it, from six real rows of the zaragoza FAQ (the Chinese demo
    base is skipped here: tests/chat/test_demo_zh.py builds it)."""
    from kb.demo import faq_rows

    rows = faq_rows()[:6]
    monkeypatch.setattr("kb.demo.faq_rows", lambda: rows)
    monkeypatch.setattr("kb.demo.DEBIAN_ZH_FAQ", tmp_path / "no-chinese-faq")
    call_command("demo_setup", "--no-tune", "--origin", "http://testserver", stdout=io.StringIO())
    from chat.services import demo_knowledge_base

    return demo_knowledge_base()


def test_demo_setup_creates_the_key_and_the_page_shows_it(client, demo_base, settings):
    from chat.models import WidgetKey

    # given demo_setup ran with --origin http://testserver (and the default local origins)
    key = WidgetKey.objects.get(knowledge_base=demo_base, name="demo")
    assert set(key.allowed_origins) == {*settings.KEFU_DEMO_ORIGINS, "http://testserver"}
    # when the page is opened
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/chat/demo/")
    # then it embeds the demo base's key, and the visit wrote nothing
    assert response.status_code == 200 and key.public_key in response.content.decode()
    assert writes_of(queries) == []
    # and a second run of demo_setup keeps the one key
    call_command("demo_setup", "--no-tune", stdout=io.StringIO())
    assert WidgetKey.objects.filter(knowledge_base=demo_base).count() == 1


def test_a_visit_from_an_origin_the_key_does_not_allow_changes_nothing(client, demo_base):
    from chat.models import WidgetKey

    # given the demo key, which does not allow http://kefu.example.net
    key = WidgetKey.objects.get(knowledge_base=demo_base, name="demo")
    before = list(key.allowed_origins)
    # when the page is opened on that host
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/chat/demo/", HTTP_HOST="kefu.example.net")
    # then it says how to allow it, shows no key, and nothing was written (the origin was not added)
    assert response.status_code == 503 and b"demo_setup --origin http://kefu.example.net" in response.content
    assert key.public_key.encode() not in response.content
    assert writes_of(queries) == []
    key.refresh_from_db()
    assert key.allowed_origins == before


def test_without_the_demo_base_no_other_base_is_exposed(client, support_kb):
    from chat.models import WidgetKey

    # given a real, indexed base and no demo base
    assert support_kb.active_index_id is not None
    # when the demo page is opened
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/chat/demo/")
    # then it says to run demo_setup; no key was created for the real base and nothing was written
    assert response.status_code == 503 and b"demo_setup" in response.content
    assert not WidgetKey.objects.exists()
    assert writes_of(queries) == []


def test_the_demo_key_is_only_ever_made_for_the_demo_base(support_kb):
    from chat.services import demo_widget_key_ensure

    # when something asks for a demo key on another base / then it is refused
    with pytest.raises(ValueError, match="demo base"):
        demo_widget_key_ensure(knowledge_base=support_kb, origins=["http://testserver"])


def test_the_page_is_off_when_the_setting_says_so(client, demo_base, settings):
    # given a demo base and its key, and the page switched off
    settings.KEFU_DEMO_PAGE = False
    # when / then 404
    assert client.get("/chat/demo/").status_code == 404
    assert client.get("/api/v1/chat/demo/").status_code == 404


def test_the_page_is_404_under_the_production_settings(tmp_path):
    # given the production settings, with the environment saying the page should be on
    script = ("import django; django.setup(); from django.test import Client; "
              "print(Client().get('/chat/demo/', secure=True, HTTP_HOST='kefu.example.com').status_code)")
    result = subprocess.run([PYTHON, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=subprocess_env(DJANGO_SETTINGS_MODULE="kefu.settings.production",
                                               SECRET_KEY="k" * 50, ALLOWED_HOSTS="kefu.example.com",
                                               KEFU_DEMO_PAGE="true", KEFU_DATA_DIR=str(tmp_path),
                                               DATABASE_URL=None, REDIS_URL=None, KEFU_WARMUP="0",
                                               KEFU_KB_RESUME_ON_START="false"))
    # then the page is not there
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "404"


def test_the_browser_tests_demo_base_serves_the_page(client, support_kb):
    from tests.chat.demo_page import as_demo_base

    # given a test's base made the demo base as demo_setup would (what the widget browser tests use)
    as_demo_base(support_kb, origin="http://testserver")
    # when / then the page shows its widget
    response = client.get("/api/v1/chat/demo/")
    assert response.status_code == 200 and b"data-key=" in response.content
