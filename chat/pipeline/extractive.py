"""Extractive answers: the best-matching sentences of the top passages, cited, instead of generating.

For deployments whose generator is small (the bundled CPU model often answers wrongly),
a base can answer with sentences that exist in its documents. Sentences of the top
passages are embedded in one batch and ranked by cosine with the question; the best
``MAX_SENTENCES`` above ``MIN_SIMILARITY`` are returned in document order, each followed
by its passage's ``[n]``.
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


def extractive_answer(*, question_vector, passages: list[Passage], embed=embed_sentences) -> Extract | None:
    """The cited extract, or None when no sentence is close enough to the question."""
    candidates: list[tuple[int, int, str]] = []  # (passage position, sentence position, sentence)
    for p_index, passage in enumerate(passages[:MAX_PASSAGES]):
        body = passage.text.split("\n", 1)[1] if passage.faq_entry_id and "\n" in passage.text else passage.text
        candidates.extend((p_index, s_index, s) for s_index, s in enumerate(sentences_of(body)))
    if not candidates:
        return None
    vectors = embed([sentence for _, _, sentence in candidates])  # (S, D)
    scores = vectors @ np.asarray(question_vector, dtype=np.float32)  # (S,)
    ranked = [i for i in np.argsort(-scores)[:MAX_SENTENCES] if scores[i] >= MIN_SIMILARITY]
    if not ranked:
        return None
    chosen = sorted(ranked, key=lambda i: candidates[i][:2])
    parts = [f"{candidates[i][2]} [{passages[candidates[i][0]].n}]" for i in chosen]
    text = " ".join(parts)
    return Extract(text, citations_for(text, passages))
