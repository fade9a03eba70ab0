"""Prometheus counters of the customer pipeline: what became of each question, the answer cache, the output gate.

Counted in the process that decides (``chat.services``): a reply known at once when the
question is stored, a generated one when it is finalised. Labelled by knowledge base
slug (a handful per installation) and a closed set of outcomes / lookup results, so the
series stay few. ``analytics.metrics`` serves them on ``/metrics`` (summed over web
processes in multiprocess mode).
"""

from __future__ import annotations

from prometheus_client import Counter

from chat.models import Message
from chat.pipeline.output_gate import CHECKS

ANSWERS = Counter("kefu_chat_answers", "Questions by knowledge base and final outcome "
                  "(cached, direct, answered, handed_off, refused, failed).", ["knowledge_base", "outcome"])
CACHE_LOOKUPS = Counter("kefu_chat_cache_lookups", "Answer-cache lookups by knowledge base and result "
                        "(exact or semantic hit, miss).", ["knowledge_base", "result"])
CACHE_RESULTS = ("exact", "semantic", "miss")
GENERATION_REJECTED = Counter("kefu_generation_rejected", "Generated replies the output gate replaced with Kefu's "
                              "refusal, by knowledge base and the check that failed (empty, script, repetition).",
                              ["knowledge_base", "check"])
RATE_LIMITED = Counter("kefu_chat_rate_limited", "Requests refused by a rate limit, by the limit that was full: key "
                       "(a widget key's bucket, shared by every customer of that site), ip (one IPv4 address or IPv6 "
                       "/64), conversation, handoff-ip, handoff-conversation, read-ip (GETs), streams-ip (open streams of one "
                       "client), live-conversation (open live streams of one conversation).", ["scope"])
RATE_LIMIT_SCOPES = ("key", "ip", "conversation", "handoff-ip", "handoff-conversation", "read-ip", "streams-ip",
                     "live-conversation")
for _scope in RATE_LIMIT_SCOPES:  # exported at 0 from the start, so rate() and increase() see the first refusal
    RATE_LIMITED.labels(_scope)


def answer_count(*, knowledge_base: str, outcome: str) -> None:
    """One question reached ``outcome`` (pending ones are counted when they finish); an outcome the model does
    not know is counted as ``other``, so the label stays bounded."""
    if outcome != "pending":
        ANSWERS.labels(knowledge_base, outcome if outcome in Message.Outcome.values else "other").inc()


def cache_lookup_count(*, knowledge_base: str, result: str) -> None:
    if result not in CACHE_RESULTS:
        raise ValueError(f"cache lookup result {result!r} is not one of {CACHE_RESULTS}")
    CACHE_LOOKUPS.labels(knowledge_base, result).inc()


def generation_rejected_count(*, knowledge_base: str, check: str) -> None:
    """One generated reply failed the output gate's ``check`` (chat.pipeline.output_gate.CHECKS)."""
    if check not in CHECKS:
        raise ValueError(f"output gate check {check!r} is not one of {CHECKS}")
    GENERATION_REJECTED.labels(knowledge_base, check).inc()


REJECTED = Counter("kefu_chat_requests_rejected", "Chat API requests answered with a 4xx, by its error code (a closed "
                   "set of names in the code: invalid_json, body_too_large, rate_limited, unknown_key, ...).", ["code"])


def rejected_count(*, code: str) -> None:
    """One request refused with ``code`` (codes are names in the code, never client data)."""
    REJECTED.labels(code).inc()


def rate_limited_count(*, scope: str) -> None:
    """One request refused because ``scope``'s window was full; scopes are names in the code, never client data."""
    RATE_LIMITED.labels(scope).inc()
