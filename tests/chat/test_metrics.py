"""Prometheus counters of the pipeline: every final outcome and every cache lookup, per knowledge base."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from chat import services
from chat.models import Message
from inference.stream import StreamEvent


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def outcomes(kb: str) -> dict[str, float]:
    return {outcome: count("kefu_chat_answers_total", knowledge_base=kb, outcome=outcome)
            for outcome in ("direct", "cached", "answered", "failed", "refused", "pending")}


def lookups(kb: str) -> dict[str, float]:
    return {result: count("kefu_chat_cache_lookups_total", knowledge_base=kb, result=result)
            for result in ("exact", "semantic", "miss")}


def ask(widget_key, text: str) -> Message:
    started = services.message_answer(widget_key=widget_key, conversation=None, text=text)
    return Message.objects.get(pk=started.message_id)


def test_outcomes_and_cache_lookups_are_counted_per_knowledge_base(widget_key, fake_generator):
    kb = widget_key.knowledge_base.slug
    outcomes_before, lookups_before = outcomes(kb), lookups(kb)
    # given a FAQ question asked twice (direct, then an exact cache hit)
    ask(widget_key, "What are your opening hours?")
    ask(widget_key, "what are your opening hours")
    # and two generated answers, one finished and one failed by the generator
    done = ask(widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    lost = ask(widget_key, "How long does drilling for a heat pump take?")
    assert (done.outcome, lost.outcome) == ("pending", "pending")
    services.message_finalize(message=done, event=StreamEvent("1-0", "done", {
        "text": "You need a drilling permit [1].", "prompt_tokens": 90, "completion_tokens": 8,
        "finish_reason": "stop"}))
    services.message_finalize(message=lost, event=StreamEvent("2-0", "error", {"code": "worker_lost"}))
    services.message_finalize(message=lost, event=StreamEvent("2-1", "error", {"code": "worker_lost"}))  # again
    # then each question is counted once, under its final outcome (pending ones when they finish)
    moved = {name: outcomes(kb)[name] - before for name, before in outcomes_before.items()}
    assert moved == {"direct": 1, "cached": 1, "answered": 1, "failed": 1, "refused": 0, "pending": 0}
    # and each question looked the cache up once: one exact hit, three misses
    assert {name: lookups(kb)[name] - before for name, before in lookups_before.items()} == {
        "exact": 1, "semantic": 0, "miss": 3}


def test_a_follow_up_that_skips_the_cache_counts_no_lookup(widget_key, fake_generator):
    kb = widget_key.knowledge_base.slug
    first = ask(widget_key, "What are your opening hours?")
    before = lookups(kb)
    # when a follow-up leaning on the conversation's history is asked
    services.message_answer(widget_key=widget_key, conversation=first.conversation,
                            text="And is that the same on Saturday?")
    # then no lookup is counted (the cache is neither read nor written for it)
    assert lookups(kb) == before


def test_an_outcome_the_model_does_not_know_is_counted_as_other():
    from chat.metrics import answer_count

    # given an outcome string that is not one of Message.Outcome (a bug elsewhere must not add series)
    before = count("kefu_chat_answers_total", knowledge_base="shop", outcome="other")
    # when it is counted
    answer_count(knowledge_base="shop", outcome="made-up")
    # then it lands in "other"
    assert count("kefu_chat_answers_total", knowledge_base="shop", outcome="other") == before + 1
    assert count("kefu_chat_answers_total", knowledge_base="shop", outcome="made-up") == 0


def test_rate_limit_refusals_are_counted_by_scope(settings, redis_cache):
    from chat.pipeline.guard import request_rate_check

    # given a widget key whose shared bucket holds 2 requests a minute
    settings.KEFU_CHAT_RATE_LIMITS = {"key": (2, 60), "ip": (1000, 60), "conversation": (1000, 60)}
    key = f"pk-{uuid.uuid4().hex}"
    before = {scope: count("kefu_chat_rate_limited_total", scope=scope) for scope in ("key", "ip")}
    # when customers from three addresses ask
    decisions = [request_rate_check(widget_key=key, ip=f"198.51.100.{n}", conversation=None) for n in range(3)]
    # then the third is refused by the key's bucket, and the refusal is counted under scope="key" only
    assert [d.allowed for d in decisions] == [True, True, False]
    assert count("kefu_chat_rate_limited_total", scope="key") == before["key"] + 1
    assert count("kefu_chat_rate_limited_total", scope="ip") == before["ip"]


def test_every_rate_limit_scope_is_exported_before_a_first_refusal():
    # the series exist at 0 from the start, so an alert's rate() sees the very first refusal
    for scope in ("key", "ip", "conversation", "handoff-ip", "handoff-conversation"):
        assert REGISTRY.get_sample_value("kefu_chat_rate_limited_total", {"scope": scope}) is not None
