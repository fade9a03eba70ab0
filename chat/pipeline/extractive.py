"""Extractive answers: the sentences of the top passages that answer the question, each once, each cited.

For deployments whose generator is small (the bundled CPU model often answers wrongly),
a base can answer with sentences that exist in its documents:

1. the passages are deduplicated by content — a FAQ entry's answer and the document chunk
   holding the same text are one passage, and so are near-duplicates (cosine of their
   sentence centroids ≥ ``DUPLICATE_PASSAGE``) — keeping the better-ranked copy;
2. every sentence of the top ``MAX_PASSAGES`` passages is embedded in one batch and scored by
   its cosine with the question plus ``LEXICAL_WEIGHT`` × the share of the question's search terms
   it holds (words, or Chinese characters and bigrams, as BM25 reads them), discounted by its
   passage's rank (``RANK_DECAY`` per place), so a close sentence of the best passage wins over an
   equally close one further down. The words count because an embedder does not read every language
   a base is written in: the bundled English MiniLM scores Chinese sentences almost at random, and
   "Debian 支持哪些 CPU 架构？" was answered with a sentence about a reference manual. Thresholds
   (``MIN_SIMILARITY``, the support score) stay on the cosine alone;
3. the best-ranked passage's best sentence leads when it is to the point at all (cosine ≥
   ``MIN_SIMILARITY``): the hybrid ranking, which weighs words and vectors, is a better judge of
   the source than one sentence cosine (measured session 7: debian-zh extractive 0.53 → 0.66,
   demo-heldout 0.78 → 0.83, debian-en 0.85 → 0.88, the demo base 0.81 unchanged);
   then the best sentence is taken, then others scoring within ``KEEP_RATIO`` of it, skipping any
   sentence that restates one already taken (cosine ≥ ``DUPLICATE_SENTENCE``), up to
   ``MAX_SENTENCES`` and ``MAX_CHARS``; they are written grouped by passage in retrieval order
   (measured on the demo base: the first citation is right once more than when the passage of the
   best sentence leads), in reading order, each followed by its passage's ``[n]``.

The same scores gate generation (:func:`has_support`): passages with no sentence at least
``MIN_SIMILARITY`` close to the question get "I don't know", not a generated guess, and
:func:`support_score` gives the best raw cosine to the answerability model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from chat.pipeline.passages import Citation, Passage, citations_for
from kb import embedding  # embedding.embed_texts looked up per call: tests swap it for a cache
from kb.retrieval.corroboration import content_key, copies
from kb.search import analyze

SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s+|(?<=[。！？；])|\n+")
MAX_SENTENCES = 3
MAX_CHARS = 420  # about three ordinary sentences: an extract is read in a chat bubble
MAX_PASSAGES = 3
MIN_SIMILARITY = 0.3
MIN_SENTENCE_CHARS = 12
RANK_DECAY = 0.93  # a sentence of the n-th passage counts RANK_DECAY ** (n - 1) of its cosine
KEEP_RATIO = 0.85  # later sentences must score at least this share of the best one
DUPLICATE_SENTENCE = 0.9  # two sentences this close say the same thing
DUPLICATE_PASSAGE = 0.95  # two passages whose sentence centroids are this close are copies
LEXICAL_WEIGHT = 0.3  # a sentence holding all the question's terms gains this much on its cosine


@dataclass(frozen=True)
class Extract:
    text: str
    citations: list[Citation]


@dataclass(frozen=True)
class Sentence:
    """One candidate sentence of a passage, with its scores against the question."""

    passage: int  # position in the deduplicated passage list (0 = best ranked)
    position: int  # position in its passage
    text: str
    cosine: float  # raw cosine with the question
    score: float  # cosine plus the lexical share, discounted by passage rank


def sentences_of(text: str) -> list[str]:
    return [part.strip() for part in SENTENCE_END.split(text) if weight(part.strip()) >= MIN_SENTENCE_CHARS]


def weight(sentence: str) -> int:
    """Length with CJK characters counted twice (one carries about a word's meaning)."""
    return len(sentence) + sum(1 for ch in sentence if "\u4e00" <= ch <= "\u9fff")


def embed_sentences(sentences: list[str]) -> np.ndarray:
    return embedding.embed_texts(sentences, batch_size=64)


def passage_body(passage: Passage) -> str:
    """The text a passage states: a FAQ passage's answer without its question line."""
    if passage.faq_entry_id and "\n" in passage.text:
        return passage.text.split("\n", 1)[1]
    return passage.text


def distinct_passages(passages: list[Passage]) -> list[Passage]:
    """The passages without exact content copies (a FAQ answer and the chunk of its source document, in
    either direction one containing the other), the better-ranked copy kept."""
    kept: list[Passage] = []
    keys: list[str] = []
    for passage in passages:
        key = content_key(passage_body(passage))
        if any(copies(key, other) for other in keys):
            continue
        kept.append(passage)
        keys.append(key)
    return kept


def term_share(question_terms: frozenset[str], sentence: str) -> float:
    """The share of the question's search terms that ``sentence`` holds (0 without a question)."""
    if not question_terms:
        return 0.0
    return len(question_terms.intersection(analyze(sentence))) / len(question_terms)


def scored_sentences(*, question_vector, passages: list[Passage], embed=embed_sentences, question: str = ""
                     ) -> tuple[list[Sentence], np.ndarray]:
    """Every sentence of the top distinct passages with its scores, and their vectors (S, D);
    sentences of a passage that nearly copies a better-ranked one are left out. ``question``: the
    searched text, for the lexical share of the score (blank: cosine only)."""
    candidates: list[tuple[int, int, str]] = []  # (passage position, sentence position, sentence)
    for p_index, passage in enumerate(passages[:MAX_PASSAGES]):
        candidates.extend((p_index, s_index, s) for s_index, s in enumerate(sentences_of(passage_body(passage))))
    if not candidates:
        return [], np.zeros((0, 0), dtype=np.float32)
    vectors = embed([sentence for _, _, sentence in candidates])  # (S, D)
    cosines = vectors @ np.asarray(question_vector, dtype=np.float32)  # (S,)
    copies = near_copy_passages([p for p, _, _ in candidates], vectors)
    question_terms = frozenset(analyze(question)) if question else frozenset()
    sentences, rows = [], []
    for row, (p_index, s_index, text) in enumerate(candidates):
        if p_index in copies:
            continue
        cosine = float(cosines[row])
        relevance = cosine + LEXICAL_WEIGHT * term_share(question_terms, text)
        sentences.append(Sentence(p_index, s_index, text, cosine, relevance * RANK_DECAY ** p_index))
        rows.append(row)
    return sentences, vectors[rows]


def near_copy_passages(owners: list[int], vectors: np.ndarray) -> set[int]:
    """Positions of passages whose sentence centroid is within ``DUPLICATE_PASSAGE`` of a better-ranked one."""
    order = sorted(set(owners))
    centroids = []
    for p_index in order:
        centroid = vectors[[i for i, owner in enumerate(owners) if owner == p_index]].mean(axis=0)  # (D,)
        centroids.append(centroid / max(float(np.linalg.norm(centroid)), 1e-12))
    copies: set[int] = set()
    for i, p_index in enumerate(order):
        if any(float(centroids[i] @ centroids[j]) >= DUPLICATE_PASSAGE for j in range(i) if order[j] not in copies):
            copies.add(p_index)
    return copies


def pick_sentences(sentences: list[Sentence], vectors: np.ndarray) -> list[Sentence]:
    """The best sentence and those close behind it, none restating another, within the length cap."""
    order = sorted(range(len(sentences)), key=lambda i: -sentences[i].score)
    if not order or sentences[order[0]].cosine < MIN_SIMILARITY:
        return []
    best = sentences[order[0]].score
    lead = next((i for i in order if sentences[i].passage == 0), None)
    chosen: list[int] = []
    length = 0
    if lead is not None and sentences[lead].cosine >= MIN_SIMILARITY:
        chosen.append(lead)  # the best-ranked passage speaks first when it has anything to the point
        length += len(sentences[lead].text)
    for i in order:
        if i in chosen:
            continue
        candidate = sentences[i]
        if len(chosen) == MAX_SENTENCES or candidate.score < best * KEEP_RATIO:
            break
        if candidate.cosine < MIN_SIMILARITY or (chosen and length + len(candidate.text) > MAX_CHARS):
            continue
        if any(float(vectors[i] @ vectors[j]) >= DUPLICATE_SENTENCE or content_key(candidate.text)
               == content_key(sentences[j].text) for j in chosen):
            continue
        chosen.append(i)
        length += len(candidate.text)
    return [sentences[i] for i in chosen]


def reading_order(chosen: list[Sentence]) -> list[Sentence]:
    """Grouped by passage in retrieval order (so the first citation is the best-ranked source that says
    something to the point), in document order inside a passage."""
    return sorted(chosen, key=lambda s: (s.passage, s.position))


def support_score(*, question_vector, passages: list[Passage], embed=embed_sentences) -> float:
    """The best raw cosine between the question and a sentence of the top passages (0 without sentences)."""
    sentences, _ = scored_sentences(question_vector=question_vector, passages=distinct_passages(passages),
                                    embed=embed)
    return max((s.cosine for s in sentences), default=0.0)


def has_support(*, question_vector, passages: list[Passage], embed=embed_sentences) -> bool:
    """True when some sentence of the top passages is about the question: the gate a generated answer
    passes too, so a passage that merely shares words with the question does not get one."""
    return support_score(question_vector=question_vector, passages=passages, embed=embed) >= MIN_SIMILARITY


def extractive_answer(*, question_vector, passages: list[Passage], embed=embed_sentences,
                      question: str = "") -> Extract | None:
    """The cited extract, or None when no sentence is close enough to the question (``question``: the
    searched text, whose words weigh in the choice of sentences)."""
    distinct = distinct_passages(passages)
    sentences, vectors = scored_sentences(question_vector=question_vector, passages=distinct, embed=embed,
                                          question=question)
    chosen = reading_order(pick_sentences(sentences, vectors))
    if not chosen:
        return None
    number = reading_numbers([distinct[s.passage].n for s in chosen])
    text = " ".join(f"{s.text} [{number[distinct[s.passage].n]}]" for s in chosen)
    return Extract(text, citations_for(text, [replace(p, n=number[p.n]) for p in distinct if p.n in number]))


def reading_numbers(cited: list[int]) -> dict[int, int]:
    """Passage number → citation number, 1, 2, 3 … in the order the extract first cites them: a customer who
    sees one source reads "[1]", not the passage's rank ("[2]" under "Sources (1)")."""
    number: dict[int, int] = {}
    for n in cited:
        number.setdefault(n, len(number) + 1)
    return number
