"""The web tier under a burst: a final reply inside the POST, remembered lookups, reused database threads."""

from __future__ import annotations

import pytest

from chat.models import CachedAnswer, Message
from tests.chat.conftest import sse_events
from tests.chat.test_views import ORIGIN, ask, stream


def test_a_final_reply_comes_whole_in_the_post_and_its_stream_says_the_same(client, widget_key, fake_generator):
    # when a customer asks a question the FAQ answers directly
    started = ask(client, widget_key, "What are your opening hours?")
    body = started.json()
    # then the 202 carries the whole reply: no stream needs reading
    assert started.status_code == 202 and body["outcome"] == "direct"
    done = body["done"]
    assert done["message_id"] == body["message_id"] and done["outcome"] == "direct"
    assert done["answer"].startswith("We are open Monday to Friday") and done["citations"]
    # and it is what is stored, and what the stream's one event says for a client that reads it anyway
    stored = Message.objects.get(pk=body["message_id"])
    assert (done["answer"], done["citations"]) == (stored.text, stored.citations)
    assert sse_events(stream(client, started))[0]["data"] == done


def test_a_pending_reply_has_no_done_in_the_post(client, widget_key, fake_generator):
    started = ask(client, widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    assert started.json()["outcome"] == "pending" and "done" not in started.json()


def test_a_handoff_notice_comes_whole_in_the_post(client, widget_key, fake_generator):
    conversation = ask(client, widget_key, "What are your opening hours?").json()["conversation_id"]
    response = client.post(f"/api/v1/chat/conversations/{conversation}/handoff", content_type="application/json",
                           HTTP_X_KEFU_KEY=widget_key.public_key, HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 202 and response.json()["done"]["outcome"] == "handed_off"


def test_a_remembered_key_that_is_disabled_is_refused_at_once(client, widget_key, settings, fake_generator):
    settings.KEFU_WEB_LOOKUP_TTL_S = 60
    # given a key this process has just served (so it remembers it)
    assert ask(client, widget_key, "What are your opening hours?").status_code == 202
    # when staff disable it
    widget_key.enabled = False
    widget_key.save()
    # then the next question is refused, though the key was remembered for another minute
    refused = ask(client, widget_key, "What are your opening hours?")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "unknown_key"


def test_a_remembered_key_is_read_from_the_database_once(client, widget_key, settings, fake_generator,
                                                         django_assert_max_num_queries):
    from chat.pipeline.cache import hits_flush

    settings.KEFU_WEB_LOOKUP_TTL_S = 60
    settings.KEFU_CHAT_CACHE_HITS_FLUSH_S = 60
    ask(client, widget_key, "What are your opening hours?")  # direct, and now cached
    ask(client, widget_key, "What are your opening hours?")
    hits_flush()
    # when the same cached question is asked again
    with django_assert_max_num_queries(6) as captured:
        assert ask(client, widget_key, "What are your opening hours?").json()["outcome"] == "cached"
    # then neither the key nor the profile was read again, and the hit was not written on the spot
    sql = " ".join(q["sql"] for q in captured.captured_queries)
    assert "chat_widgetkey" not in sql and "chat_chatprofile" not in sql and "UPDATE" not in sql
    assert CachedAnswer.objects.get().hits == 1


@pytest.mark.django_db(transaction=True)
def test_the_api_works_on_the_reused_database_threads(client, support_kb, settings, fake_generator):
    from chat.db_slots import db_executor
    from chat.models import WidgetKey

    # given the threads a real web process uses (committed rows: they cannot see a test's transaction)
    settings.KEFU_WEB_DB_THREADS = 2
    key = WidgetKey.objects.create(knowledge_base=support_kb, name="shop", allowed_origins=[ORIGIN])
    # when a question is asked, and its stream is read
    started = ask(client, key, "What are your opening hours?")
    events = sse_events(stream(client, started))
    # then both ran on the executor's threads and answered
    assert started.status_code == 202 and started.json()["outcome"] == "direct"
    assert events[-1]["data"]["answer"] == started.json()["done"]["answer"]
    assert db_executor()._max_workers == 2 and len(db_executor()._threads) >= 1


def test_postgres_connections_are_pooled_per_process(tmp_path):
    from kefu.config import database_from_url

    pooled = database_from_url("postgres://kefu@db:5432/kefu", tmp_path, pool_size=12)
    assert pooled["OPTIONS"]["pool"]["max_size"] == 12 and pooled["CONN_MAX_AGE"] == 0
    assert "pool" not in database_from_url("postgres://kefu@db:5432/kefu", tmp_path, pool_size=0)["OPTIONS"]
    assert "pool" not in database_from_url("", tmp_path, pool_size=12).get("OPTIONS", {})  # SQLite


def test_a_service_mode_web_process_embeds_on_one_torch_thread(settings):
    import torch

    from kefu import compute, runtime

    # given service mode (the generator runs on the inference worker)
    settings.KEFU_MODE, settings.KEFU_WEB_TORCH_THREADS = "service", 1
    before = compute.call(torch.get_num_threads)
    try:
        # when the web process sets its compute thread up
        runtime.web_torch_threads_set()
        # then its torch computations use one intra-op thread
        assert compute.call(torch.get_num_threads) == 1
    finally:
        compute.call(torch.set_num_threads, before)
