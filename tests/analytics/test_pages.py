"""Staff pages: who may open them, and what they show for seeded chat records."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from analytics.models import ExpertLoadRollup
from kefu.roles import ANALYST, SUPPORT_AGENT
from tests.analytics import seed
from tests.conftest import staff_member

PAGES = ["/staff/", "/staff/gaps/", "/staff/questions/", "/staff/feedback/", "/staff/inbox/"]


@pytest.fixture
def shop(db):
    kb = seed.knowledge_base("shop")
    key = seed.widget_key(kb, "web")
    return kb, key


def chart_specs(response) -> dict:
    match = re.search(r'<script id="chart-specs" type="application/json">(.*?)</script>',
                      response.content.decode(), re.S)
    return {spec["id"]: spec for spec in json.loads(match.group(1))}


@pytest.mark.parametrize("url", PAGES + ["/staff/conversations/nope/"])
def test_anonymous_visitors_are_sent_to_sign_in(client, db, url):
    # given nobody signed in / when a staff page is opened / then it redirects to the staff sign-in
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/staff/login/")


@pytest.mark.parametrize("url", PAGES)
def test_a_widget_key_does_not_open_staff_pages(client, shop, url):
    # given a valid widget key and an allowed origin, as the widget sends them
    _, key = shop
    # when a staff page is requested with them
    response = client.get(url, HTTP_X_KEFU_KEY=key.public_key, HTTP_ORIGIN="https://shop.example")
    # then it is treated as anonymous
    assert response.status_code == 302 and "/staff/login/" in response["Location"]


@pytest.mark.parametrize("url", PAGES)
def test_signed_in_non_staff_users_get_403(client, db, url):
    client.force_login(User.objects.create_user("cus", password="pw-cus-123"))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_each_page_opens_for_the_roles_it_belongs_to(client, db, url):
    # given an analyst and a support agent, neither Django staff (kefu.roles; the whole matrix: tests/kefu/test_roles.py)
    role = SUPPORT_AGENT if url == "/staff/inbox/" else ANALYST
    client.force_login(staff_member("member", password="pw-member-123", roles=(role,)))
    # then the page opens for its role
    assert client.get(url).status_code == 200


def test_posts_are_refused_to_non_staff(client, shop):
    kb, _ = shop
    client.force_login(User.objects.create_user("cus", password="pw-cus-123"))
    conv = seed.conversation(kb, at=timezone.now(), status="handed_off")
    assert client.post(f"/staff/conversations/{conv.public_id}/reply", {"text": "hi"}).status_code == 403
    assert client.post(f"/staff/conversations/{conv.public_id}/close").status_code == 403
    assert client.post("/staff/gaps/faq", {"knowledge_base": kb.pk, "question": "q", "answer": "a"}).status_code == 403


def test_staff_sign_in_page_logs_in_role_members(client, db):
    # given an analyst (not Django staff, so the admin login would refuse them)
    staff_member("ana", password="pw-ana-12345", roles=(ANALYST,))
    # when they sign in on the staff sign-in page
    response = client.post("/staff/login/", {"username": "ana", "password": "pw-ana-12345", "next": "/staff/"})
    # then they land on the dashboard
    assert response.status_code == 302 and response["Location"] == "/staff/"
    assert client.get("/staff/").status_code == 200


def test_dashboard_charts_carry_the_seeded_numbers(staff_client, shop):
    # given three questions in the last day: cached, generated, refused; one rated down
    kb, key = shop
    now = timezone.now()
    conv = seed.conversation(kb, at=now - timedelta(hours=3), key=key)
    seed.exchange(conv, at=now - timedelta(hours=3), outcome="cached", timings={"total_ms": 40.0})
    seed.exchange(conv, at=now - timedelta(hours=3), outcome="answered",
                  timings={"first_token_ms": 700.0, "total_ms": 2100.0, "queue_ms": 30.0, "tokens_per_s": 25.0},
                  prompt_tokens=300, completion_tokens=60, rating="down")
    seed.exchange(conv, at=now - timedelta(hours=2), outcome="refused", question="do you sell bikes?")
    # when the dashboard opens for the last 24 h (embedded mode rolls up on open)
    response = staff_client.get("/staff/", {"range": "24h"})
    # then the headline and the chart specs hold those numbers
    assert response.status_code == 200
    headline = response.context["data"].headline
    assert (headline.questions, headline.conversations, headline.visitors) == (3, 1, 1)
    assert headline.prompt_tokens == 300 and headline.completion_tokens == 60
    specs = chart_specs(response)
    volume = {d["label"]: sum(v or 0 for v in d["data"]) for d in specs["volume"]["datasets"]}
    assert volume["questions"] == 3 and volume["conversations"] == 1
    outcomes = {d["label"]: [v for v in d["data"] if v] for d in specs["outcomes"]["datasets"]}
    assert outcomes["from cache"] == [50.0] and outcomes["refused (I don't know)"] == [100.0]
    assert {"ttft", "total", "speed", "cost", "feedback", "intents"} <= set(specs)
    assert "chart.umd.min.js" in response.content.decode()
    assert "experts-empty" in response.content.decode()  # no MoE generations: the empty state


def test_dashboard_filters_by_knowledge_base_and_channel(staff_client, shop):
    # given questions on two bases and two keys
    kb, key = shop
    other = seed.knowledge_base("other")
    other_key = seed.widget_key(kb, "app")
    now = timezone.now()
    seed.exchange(seed.conversation(kb, at=now - timedelta(hours=1), key=key), at=now - timedelta(hours=1))
    seed.exchange(seed.conversation(kb, at=now - timedelta(hours=1), key=other_key), at=now - timedelta(hours=1))
    seed.exchange(seed.conversation(other, at=now - timedelta(hours=1)), at=now - timedelta(hours=1))
    # then each filter counts only its own questions
    assert staff_client.get("/staff/", {"range": "24h"}).context["data"].headline.questions == 3
    assert staff_client.get("/staff/", {"range": "24h", "kb": kb.pk}).context["data"].headline.questions == 2
    assert staff_client.get("/staff/", {"range": "24h", "key": key.pk}).context["data"].headline.questions == 1
    day = timezone.localdate(now)
    custom = staff_client.get("/staff/", {"range": "custom", "from": (day - timedelta(days=1)).isoformat(),
                                          "to": day.isoformat(), "kb": other.pk})
    assert custom.context["data"].headline.questions == 1


@pytest.mark.parametrize("query", [{"range": "year"}, {"kb": "x"}, {"range": "custom", "from": "2026-03-05",
                                                                    "to": "2026-03-01"}])
def test_bad_filters_are_a_400(staff_client, query):
    assert staff_client.get("/staff/", query).status_code == 400


def test_expert_load_heatmap_and_imbalance_for_a_moe_model(staff_client, settings):
    # given two hours of expert load for the served model, one layer balanced and one skewed
    settings.KEFU_MODEL = "tiny-moe"
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    for offset in (0, 1):
        ExpertLoadRollup.objects.create(hour=hour + timedelta(hours=offset), model="tiny-moe", layer=0,
                                        counts=[10, 10, 10, 10], requests=2)
        ExpertLoadRollup.objects.create(hour=hour + timedelta(hours=offset), model="tiny-moe", layer=1,
                                        counts=[37, 1, 1, 1], requests=2)
    # when the dashboard opens
    response = staff_client.get("/staff/", {"range": "24h"})
    # then the heatmap sums the window and the imbalance is per layer
    experts = response.context["experts"]
    assert [row.layer for row in experts.layers] == [0, 1] and experts.num_experts == 4
    assert [tokens for tokens, _ in experts.layers[1].cells] == [74, 2, 2, 2]
    assert experts.layers[0].max_over_mean == 1.0 and experts.layers[1].max_over_mean == 3.7
    specs = chart_specs(response)
    assert [v for v in specs["expert-ratio"]["datasets"][1]["data"] if v] == [3.7, 3.7]
    assert 'id="expert-heatmap"' in response.content.decode()
