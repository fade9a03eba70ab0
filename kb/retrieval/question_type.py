"""Answer-type agreement: among near-tied hits, the one whose question asks what the customer asks leads.

A small bi-encoder reads "How many weeks will we be without a shower?" as close to "How often should I
replace the bathroom?" as to "How long does a bathroom renovation take?": it weighs the topic words and
barely the kind of answer asked for. Question answering has long matched the expected answer type
(a cost, a duration, a time, a person, a place, a reason, a definition, a difference) between the
question and the candidate; here the candidate's question is a FAQ entry's question, or a heading or
document title written as a question.

The rule is deliberately narrow: only when the best hit's question asks for another type, and a hit in
the top ``DEPTH`` asks for the customer's type with a fused score of at least ``RATIO`` × the best one,
does that hit move to the front. Everything else keeps the fused order. English and Chinese cues.
Measured on the demo base (``bench/answer_eval_all.py``, session 9): hits ranked first right 76 → 79–80 of
90 on ``zaragoza.jsonl`` (whose misses the rule was written from), 50 → 51 and 53 → 53 of 60 on
``zaragoza_heldout.jsonl`` (under two fusion settings), Debian sets unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

RATIO = 0.8  # a matching hit must score at least this share of the best fused score
DEPTH = 3  # how far down the fused list a matching hit may come from

ASKS = r"(?:^|[.?!;:]\s*|\b(?:and|so|but|or)\s+)"  # where a question (or a second one) starts
# First match wins: "how much does a permit cost" is a cost, not a definition.
TYPES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    ("cost", r"\bhow much\b|\bcosts?\b|\bprices?\b|\bpricing\b|\bexpensive\b|\bcheap(?:er|est)?\b|\bfees?\b"
             r"|\bset (?:me|us) back\b|\bbudget|多少钱|费用|价格|价钱|收费"),
    ("duration", r"\bhow long\b|\bhow many (?:minutes|hours|days|weeks|months|years)\b|多久|多长时间"),
    # "when", "who", "where" and "why" ask only where a question starts ("Is VAT reverse charged when I only
    # buy materials?" asks nothing about time; "a builder who is not registered" about no person).
    ("time", rf"{ASKS}when\b|\bwhat time\b|\b(?:what|which) hours\b|\bopening hours\b|什么时候|几点"),
    ("who", rf"{ASKS}(?:who|whom|whose)\b|谁"),
    ("where", rf"{ASKS}where\b|哪里|在哪"),
    ("why", rf"{ASKS}why\b|为什么|为何"),
    ("difference", r"\bdifference\b|\bdiffers?\b|\bvs\.?\b|\bversus\b|区别|不同"),
    ("definition", r"^what(?:'s| is| are) (?:a|an)\b|\bwhat (?:does|do) .+ mean\b|\bexactly is\b|\bstand for\b"
                   r"|\bmeaning of\b|什么是|是什么|指的是|什么意思"),
))
QUESTION_END = ("?", "？")


class Questioned(Protocol):
    """What the rule reads of a hit (``kb.retrieval.search.Hit``)."""

    score: float
    faq_question: str
    heading_path: str
    document_title: str


def question_type(text: str) -> str | None:
    """The kind of answer ``text`` asks for, or None when it names none of the known kinds."""
    lowered = " ".join(text.lower().split())
    return next((name for name, pattern in TYPES if pattern.search(lowered)), None)


def hit_question(hit: Questioned) -> str:
    """The question a hit answers: a FAQ entry's question, else its heading or document title when either
    is written as a question ("" otherwise)."""
    if hit.faq_question:
        return hit.faq_question
    heading = hit.heading_path.split(" > ")[-1] if hit.heading_path else ""
    return next((text for text in (heading, hit.document_title) if text.rstrip().endswith(QUESTION_END)), "")


def prefer_matching_type(query: str, hits: Sequence[Questioned]) -> list:
    """``hits`` with the first near-tied hit of the query's answer type moved to the front, when the best
    hit asks for another type; otherwise unchanged."""
    hits = list(hits)
    wanted = question_type(query)
    if wanted is None or len(hits) < 2 or question_type(hit_question(hits[0])) == wanted:
        return hits
    floor = RATIO * hits[0].score
    for position, hit in enumerate(hits[1:DEPTH], start=1):
        if hit.score >= floor and question_type(hit_question(hit)) == wanted:
            return [hit, *hits[:position], *hits[position + 1:]]
    return hits
