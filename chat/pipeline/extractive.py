"""Extractive answers: the best-matching sentences of the top passages, cited, instead of generating.

For deployments whose generator is small (the bundled CPU model often answers wrongly),
a base can answer with sentences that exist in its documents. Sentences of the top
passages are embedded in one batch and ranked by cosine with the question; the best
``MAX_SENTENCES`` above ``MIN_SIMILARITY`` are returned in document order, each followed
by its passage's ``[n]``. The same test gates generation (:func:`has_support`): passages
with no sentence that close to the question get "I don't know", not a generated guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from chat.pipeline.passages import Citation, Passage, citations_for

SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s+|(?<=[。！？；])|\n+")
MAX_SENTENCES = 2
MAX_PASSAGES = 3
MIN_SIMILARITY = 0.3
MIN_SENTENCE_CHARS = 12


@dataclass(frozen=True)
class Extract:
    text: str
    citations: list[Citation]


def sentences_of(text: str) -> list[str]:
    return [part.strip() for part in SENTENCE_END.split(text) if weight(part.strip()) >= MIN_SENTENCE_CHARS]


def weight(sentence: str) -> int:
    """Length with CJK characters counted twice (one carries about a word's meaning)."""
    return len(sentence) + sum(1 for ch in sentence if "\u4e00" <= ch <= "\u9fff")


def embed_sentences(sentences: list[str]) -> np.ndarray:
    from kb.embedding import embed_texts  # loads sentence-transformers (torch) on first use

    return embed_texts(sentences, batch_size=64)


def supporting_sentences(*, question_vector, passages: list[Passage],
                         embed=embed_sentences) -> list[tuple[int, int, str]]:
    """The (passage position, sentence position, sentence) of the top passages' sentences closest to the
    question, best first: at most ``MAX_SENTENCES``, each with cosine ≥ ``MIN_SIMILARITY``."""
    candidates: list[tuple[int, int, str]] = []  # (passage position, sentence position, sentence)
    for p_index, passage in enumerate(passages[:MAX_PASSAGES]):
        body = passage.text.split("\n", 1)[1] if passage.faq_entry_id and "\n" in passage.text else passage.text
        candidates.extend((p_index, s_index, s) for s_index, s in enumerate(sentences_of(body)))
    if not candidates:
        return []
    vectors = embed([sentence for _, _, sentence in candidates])  # (S, D)
    scores = vectors @ np.asarray(question_vector, dtype=np.float32)  # (S,)
    return [candidates[i] for i in np.argsort(-scores)[:MAX_SENTENCES] if scores[i] >= MIN_SIMILARITY]


def has_support(*, question_vector, passages: list[Passage], embed=embed_sentences) -> bool:
    """True when some sentence of the top passages is about the question: the gate a generated answer
    passes too, so a passage that merely shares words with the question does not get one."""
    return bool(supporting_sentences(question_vector=question_vector, passages=passages, embed=embed))


def extractive_answer(*, question_vector, passages: list[Passage], embed=embed_sentences) -> Extract | None:
    """The cited extract, or None when no sentence is close enough to the question."""
    ranked = supporting_sentences(question_vector=question_vector, passages=passages, embed=embed)
    if not ranked:
        return None
    chosen = sorted(ranked, key=lambda candidate: candidate[:2])
    parts = [f"{sentence} [{passages[p_index].n}]" for p_index, _, sentence in chosen]
    text = " ".join(parts)
    return Extract(text, citations_for(text, passages))
