"""Knowledge gaps grouped by meaning, turned into an FAQ entry that later questions are answered from."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.filters import dashboard_filter_parse
from analytics.rollups import rollup_refresh
from analytics.selectors.gaps import knowledge_gaps, top_questions
from tests.analytics import seed

PAYPAL = ["Can I pay with PayPal?", "do you accept paypal", "Is PayPal accepted as a payment method?"]
NORWAY = ["Do you ship to Norway?", "Can you deliver my order to Oslo, Norway?"]


@pytest.fixture
def gaps(db, embedder):
    kb = seed.knowledge_base("shop")
    now = timezone.now()
    conv = seed.conversation(kb, at=now - timedelta(hours=5))
    for index, text in enumerate(PAYPAL):
        seed.exchange(conv, at=now - timedelta(hours=4, minutes=index), question=text, outcome="refused",
                      reason="no_relevant_passage", intent="knowledge")
    for index, text in enumerate(NORWAY):
        outcome = "handed_off" if index == 0 else "answered"
        seed.exchange(conv, at=now - timedelta(hours=1, minutes=index), question=text, outcome=outcome,
                      rating="" if index == 0 else "down", reason="intent" if index == 0 else "generated")
    # not gaps: a good answer, and a refusal for a blocked word
    seed.exchange(conv, at=now - timedelta(hours=2), question="What are your opening hours?", rating="up")
    seed.exchange(conv, at=now - timedelta(hours=2), question="you idiots", outcome="refused",
                  reason="sensitive_word")
    return kb


def test_gap_questions_are_grouped_by_meaning_newest_group_first(gaps):
    # when the gaps of the last day are read
    groups = knowledge_gaps(dashboard_filter_parse({"range": "24h"}))
    # then the shipping and payment questions form one group each, the newer (shipping) first
    assert [group.count for group in groups] == [2, 3]
    assert {text for text, _ in groups[0].phrasings} == set(NORWAY)
    assert {text for text, _ in groups[1].phrasings} == set(PAYPAL)
    assert dict(groups[1].reasons) == {"no_relevant_passage": 3}
    assert dict(groups[0].reasons) == {"intent": 1, "down-voted": 1}
    assert groups[1].representative in PAYPAL


def test_top_questions_merge_phrasings_and_show_cache_hits(db, embedder):
    # given three phrasings of one question (two answered from the cache) and another question
    kb = seed.knowledge_base("shop")
    now = timezone.now()
    conv = seed.conversation(kb, at=now - timedelta(hours=2))
    for text, outcome in [("How do I return an item?", "answered"), ("how do i return an item", "cached"),
                          ("How can I return a product I bought?", "cached"), ("What are your opening hours?",
                                                                             "direct")]:
        seed.exchange(conv, at=now - timedelta(hours=2), question=text, outcome=outcome)
    rollup_refresh()
    # when the top questions are read
    groups = top_questions(dashboard_filter_parse({"range": "24h"}))
    # then the return questions are one group of three with two cache hits
    assert [(group.asked, group.cached) for group in groups] == [(3, 2), (1, 0)]
    assert groups[0].cache_rate == pytest.approx(2 / 3)


def test_gaps_page_lists_groups_with_a_prefilled_faq_form(staff_client, gaps):
    response = staff_client.get("/staff/gaps/", {"range": "24h"})
    body = response.content.decode()
    assert response.status_code == 200 and body.count("data-gap") == 2
    assert 'name="question" value="' in body and 'name="answer"' in body


def test_a_gap_group_becomes_an_faq_entry_that_answers_the_next_question(
        staff_client, gaps, monkeypatch, django_capture_on_commit_callbacks):
    from chat.models import WidgetKey
    from chat.services import message_answer
    from kb.models import FaqEntry, KnowledgeBase

    # given the index is rebuilt in this thread when the kb app enqueues it (embedded mode uses a pool)
    from kefu import background

    def run_here(task, *args, queue=None, **kwargs):  # a task, or the name a service enqueues it by
        return (background.task_named(task) if isinstance(task, str) else task).run(*args, **kwargs)

    monkeypatch.setattr(background, "enqueue", run_here)
    group = knowledge_gaps(dashboard_filter_parse({"range": "24h"}))[1]
    # when staff turn the PayPal group into an FAQ entry with their answer
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/staff/gaps/faq", {
            "knowledge_base": gaps.pk, "question": group.representative, "alternative": list(group.alternatives),
            "answer": "Yes, we accept PayPal for every order.", "query": "range=24h"})
    # then the entry exists with the other phrasings, and the base has an index holding it
    assert response.status_code == 302 and response["Location"] == "/staff/gaps/?range=24h"
    entry = FaqEntry.objects.get(knowledge_base=gaps)
    assert entry.question == group.representative and set(entry.alternatives) == set(PAYPAL) - {entry.question}
    assert KnowledgeBase.objects.get(pk=gaps.pk).active_index is not None
    # and the customers' wordings join the base's evaluation set, expecting that entry
    from kb.models import EvalCase

    cases = EvalCase.objects.filter(knowledge_base=gaps)
    assert {(c.question, c.faq_entry_id, c.origin) for c in cases} == {(q, entry.pk, "gap") for q in entry.alternatives}
    # and a later customer question is answered from it directly
    key = WidgetKey.objects.create(knowledge_base=KnowledgeBase.objects.get(pk=gaps.pk), name="web")
    started = message_answer(widget_key=key, conversation=None, text="Can I pay using PayPal?")
    from chat.models import Message

    reply = Message.objects.get(pk=started.message_id)
    assert (reply.outcome, reply.text) == ("direct", "Yes, we accept PayPal for every order.")
    # and the gaps page now marks the group as covered
    covered = knowledge_gaps(dashboard_filter_parse({"range": "24h"}))
    assert [group.covered_by_faq_id for group in covered] == [None, entry.pk]


def test_an_faq_without_an_answer_is_refused(staff_client, gaps):
    from kb.models import FaqEntry

    response = staff_client.post("/staff/gaps/faq", {"knowledge_base": gaps.pk, "question": "Pay by PayPal?",
                                                     "answer": "  "})
    assert response.status_code == 400 and not FaqEntry.objects.exists()


def test_gap_groups_cost_a_fixed_number_of_queries(gaps, django_assert_max_num_queries):
    # given the two gap groups of the fixture (their FAQ coverage is checked against one read per base)
    knowledge_gaps(dashboard_filter_parse({"range": "24h"}))  # embeds the texts once
    # when read again / then base names, gap questions and the base's later FAQ entries: three queries
    with django_assert_max_num_queries(3):
        groups = knowledge_gaps(dashboard_filter_parse({"range": "24h"}))
    assert len(groups) == 2


def test_a_resolved_thumbs_down_joins_the_evaluation_set_with_the_source_staff_named(staff_client, gaps):
    from kb.models import EvalCase, FaqEntry

    entry = FaqEntry.objects.create(knowledge_base=gaps, question="Where do you deliver?", answer="All of Europe.")
    # given the down-rated Norway answer is listed with a form to resolve it
    page = staff_client.get("/staff/feedback/?range=24h").content.decode()
    assert "Can you deliver my order to Oslo, Norway?" in page and f'value="faq:{entry.pk} Where do you deliver?"' in page
    # when staff name the FAQ entry that answers it
    response = staff_client.post("/staff/feedback/resolve", {
        "knowledge_base": gaps.pk, "question": "Can you deliver my order to Oslo, Norway?",
        "source": f"faq:{entry.pk} Where do you deliver?", "query": "range=24h"})
    # then the question is an evaluation case expecting that entry, and the page shows it resolved
    assert response.status_code == 302
    case = EvalCase.objects.get(knowledge_base=gaps)
    assert (case.question, case.faq_entry_id, case.origin) == ("Can you deliver my order to Oslo, Norway?", entry.pk,
                                                               "feedback")
    assert ("Resolved — the right source: Where do you deliver? (in the base's evaluation set, and one of the "
            "entry's phrasings)") in staff_client.get("/staff/feedback/?range=24h").content.decode()
    # and the customer's wording is one of the entry's phrasings from now on
    entry.refresh_from_db()
    assert entry.alternatives == ["Can you deliver my order to Oslo, Norway?"] and entry.embeddings == b""


def test_a_resolved_thumbs_down_answers_the_next_customer_who_asks_it_from_the_named_entry(
        staff_client, gaps, monkeypatch, django_capture_on_commit_callbacks):
    from chat.models import Message, WidgetKey
    from chat.services import message_answer
    from kb.models import FaqEntry, KnowledgeBase
    from kb.services import faq_entry_create
    from kefu import background

    # given index builds run in this thread, and a base with the FAQ entry staff will name (indexed)
    def run_here(task, *args, queue=None, **kwargs):  # a task, or the name a service enqueues it by
        return (background.task_named(task) if isinstance(task, str) else task).run(*args, **kwargs)

    monkeypatch.setattr(background, "enqueue", run_here)
    with django_capture_on_commit_callbacks(execute=True):
        entry = faq_entry_create(knowledge_base=gaps, question="Which countries do you ship to?",
                                               answer="We ship to every EU country and to Norway.")
    # when staff resolve the down-rated Oslo question with that entry
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/staff/feedback/resolve", {
            "knowledge_base": gaps.pk, "question": NORWAY[1], "source": f"faq:{entry.pk}", "query": "range=24h"})
    assert response.status_code == 302
    assert "and the FAQ entry&#x27;s phrasings" in staff_client.get("/staff/feedback/?range=24h").content.decode()
    # then the next customer asking it gets the entry's answer directly
    key = WidgetKey.objects.create(knowledge_base=KnowledgeBase.objects.get(pk=gaps.pk), name="web")
    started = message_answer(widget_key=key, conversation=None, text=NORWAY[1])
    reply = Message.objects.get(pk=started.message_id)
    assert (reply.outcome, reply.text) == ("direct", "We ship to every EU country and to Norway.")
    assert FaqEntry.objects.get(pk=entry.pk).alternatives == [NORWAY[1]]


def test_resolving_twice_with_the_same_entry_keeps_one_phrasing(staff_client, gaps):
    from kb.models import FaqEntry

    entry = FaqEntry.objects.create(knowledge_base=gaps, question="Where do you deliver?", answer="All of Europe.")
    for _ in range(2):
        staff_client.post("/staff/feedback/resolve", {
            "knowledge_base": gaps.pk, "question": f"  {NORWAY[1]} ", "source": f"faq:{entry.pk}"})
    entry.refresh_from_db()
    assert entry.alternatives == [NORWAY[1]]


def test_a_thumbs_down_resolved_with_a_document_adds_no_phrasing(staff_client, gaps):
    from kb.models import Document, EvalCase, FaqEntry

    # given an FAQ entry and a document of the base
    entry = FaqEntry.objects.create(knowledge_base=gaps, question="Where do you deliver?", answer="All of Europe.")
    document = Document.objects.create(knowledge_base=gaps, title="Shipping policy", status="ready")
    # when staff name the document as the right source
    response = staff_client.post("/staff/feedback/resolve", {
        "knowledge_base": gaps.pk, "question": NORWAY[1], "source": f"doc:{document.pk}"})
    # then the case expects the document, and no entry gained a phrasing
    assert response.status_code == 302
    assert EvalCase.objects.get(knowledge_base=gaps).document_id == document.pk
    entry.refresh_from_db()
    assert entry.alternatives == []
    # and the page says where the question went
    assert "Resolved — the right source: Shipping policy (in the base's evaluation set)." in staff_client.get(
        "/staff/feedback/?range=24h").content.decode()


@pytest.mark.parametrize("source", ["", "faq:999999", "doc:abc", "chunk:1"])
def test_resolving_with_a_source_outside_the_base_is_refused_and_stores_nothing(staff_client, gaps, source):
    from kb.models import EvalCase

    response = staff_client.post("/staff/feedback/resolve", {
        "knowledge_base": gaps.pk, "question": "Can you deliver my order to Oslo, Norway?", "source": source})
    assert response.status_code == 400 and not EvalCase.objects.exists()


def test_an_offered_question_a_customer_took_is_confirmed_with_one_click(staff_client, gaps):
    from chat.models import Message
    from kb.models import EvalCase, FaqEntry

    # given a refused question whose refusal offered an FAQ question, and the customer took it
    entry = FaqEntry.objects.create(knowledge_base=gaps, question="Which payment methods do you accept?",
                                    answer="Cards and PayPal.")
    refused = Message.objects.filter(role="assistant", reply_to__text=PAYPAL[0]).get()
    Message.objects.filter(pk=refused.pk).update(suggestions=[entry.question])
    conversation = refused.conversation
    Message.objects.create(conversation=conversation, role="user", text=entry.question, taken_from=refused,
                           outcome="answered")
    # when staff open the feedback page
    page = staff_client.get("/staff/feedback/?range=24h").content.decode()
    # then the refused question is listed with the one the customer took, and a form naming its entry
    assert "Offered questions customers took" in page and PAYPAL[0] in page
    assert f'name="source" value="faq:{entry.pk}"' in page
    # when staff confirm it
    response = staff_client.post("/staff/feedback/resolve", {
        "knowledge_base": gaps.pk, "question": PAYPAL[0], "source": f"faq:{entry.pk}", "origin": "offer",
        "query": "range=24h"})
    # then the refused question joins the evaluation set, expecting that entry, and shows as resolved
    assert response.status_code == 302
    case = EvalCase.objects.get(knowledge_base=gaps)
    assert (case.question, case.faq_entry_id, case.origin) == (PAYPAL[0], entry.pk, "offer")
    assert "Resolved — the right source: Which payment methods do you accept?" in staff_client.get(
        "/staff/feedback/?range=24h").content.decode()
    # and the refused wording is one of the entry's phrasings
    entry.refresh_from_db()
    assert entry.alternatives == [PAYPAL[0]]


def test_no_taken_offer_says_so(staff_client, gaps):
    assert "No offered question was taken in this window." in staff_client.get(
        "/staff/feedback/?range=24h").content.decode()


def test_resolving_with_an_unknown_kind_of_confirmation_is_refused_and_stores_nothing(staff_client, gaps):
    from kb.models import EvalCase, FaqEntry

    entry = FaqEntry.objects.create(knowledge_base=gaps, question="Where do you deliver?", answer="All of Europe.")
    response = staff_client.post("/staff/feedback/resolve", {
        "knowledge_base": gaps.pk, "question": "Can you deliver my order to Oslo, Norway?",
        "source": f"faq:{entry.pk}", "origin": "gap"})
    assert response.status_code == 400 and not EvalCase.objects.exists()
