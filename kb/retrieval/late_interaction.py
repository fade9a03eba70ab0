"""Late interaction: the head of the fused list re-read word by word against the question.

One vector per text weighs a text's topic words and blurs what sets two sibling entries apart: "How much does a
roof renovation cost?" and "How long does a roof renovation take?" sit next to each other for "roughly what would
re-roofing set us back?", and so do "Can I get ROT for a heat pump?" and "How much ROT do I get back?". ColBERT's
MaxSim (Khattab & Zaharia, 2020) reads them apart: each word piece of the question is matched with its closest
word piece of the passage, both in context, and the matches are averaged,

    closeness(q, p) = mean over q's word pieces i of max over p's word pieces j of cos(q_i, p_j).

The base's own embedder gives the word-piece vectors (its last hidden states before pooling,
:func:`kb.embedding.embed_tokens`), so nothing more is trained or loaded. The ``DEPTH`` best fused hits are
re-ordered by their fused score, min-max scaled over those hits, plus ``WEIGHT`` × closeness; the fused scores
themselves are kept (what the answerability model and the decision read of a hit does not change), and the
hits below ``DEPTH`` keep their place.

Measured on the tuned demo base (session 14, AMD EPYC Zen 4, first hit's entry right of the English sets'
in-base questions): weight 0 → 7, demo 82 → 85 of 90, demo-heldout 53 → 53 of 60, demo-spot 15 → 16 of 20,
demo-blind 40 → 45, demo-blind2 45 → 47, demo-blind3 47 → 49 of 60, 282 → 295 of the 350 (weight 5: 293,
10: 292; only the FAQ question read, not its answer: 284 at best; only the answer: 286). On the two sets nobody
had measured anything with (demo-blind4, -blind5): 45 → 47 and 44 → 41 of 60.

A follow-up is searched with its rewrite — its own words plus the topic it inherited ("how long does that take?
permit replace roof", chat.pipeline.history) — and the topic words pull the re-reading back to the previous
answer's entry. So its head is re-read against both the rewrite and the customer's own words, closeness the mean
of the two readings'. Session 18, the tuned demo base on all-mpnet-base-v2 (AMD EPYC Zen 3), the 200 follow-ups of
the English dialogue sets that were rewritten, first hit right: re-read by the rewrite alone 164, not re-read 171,
by both 173 (own words alone 166).

A passage's word-piece vectors come from the searched version's store (:mod:`kb.retrieval.token_store`) or are
kept per process (``CACHE_BYTES``, float16, the least recently used dropped
first); a question's are computed once per search.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np

from kb import embedding
from kb.retrieval.analyzer import CJK_RUN
from kb.retrieval.token_store import TokenStore

DEPTH = 5  # how many of the best fused hits are re-read
WEIGHT = 7.0  # closeness against the fused score scaled to [0, 1] over those hits
CACHE_BYTES = 64 * 2**20  # passages' word-piece vectors kept per process (a 256-piece passage: ~200 kB)


class Readable(Protocol):
    """What late interaction reads of a hit (``kb.retrieval.search.Hit``)."""

    score: float
    text: str


H = TypeVar("H", bound=Readable)


def closeness(question: np.ndarray, passage: np.ndarray) -> float:
    """MaxSim of normalised word-piece rows: each question piece's best cosine in the passage, averaged (0 when
    either has no pieces)."""
    if not len(question) or not len(passage):
        return 0.0
    return float((question @ passage.T).max(axis=1).mean())


def reread(query: str, hits: list[H], *, model: str | None, depth: int = DEPTH, weight: float | None = None,
           store: TokenStore | None = None, ask: str = "") -> list[H]:
    """``hits`` with its ``depth`` best re-ordered by scaled fused score + ``weight`` × closeness to ``query``
    (``store``: the searched version's stored word pieces, :mod:`kb.retrieval.token_store`; ``ask``: a
    follow-up's own words, when ``query`` is its rewrite — closeness is then the mean of both readings')."""
    weight = WEIGHT if weight is None else weight
    head, rest = hits[:depth], hits[depth:]
    if len(head) < 2 or weight <= 0 or not reads(model, query):
        return hits
    readings = [query, ask] if ask and ask != query and reads(model, ask) else [query]
    questions = [matrix.astype(np.float32) for matrix in
                 embedding.embed_tokens(readings, model=model, role=embedding.QUERY)]
    passages = passage_tokens([hit.text for hit in head], model=model, store=store)
    scores = [hit.score for hit in head]
    low, span = min(scores), max(scores) - min(scores)
    combined = [((hit.score - low) / span if span > 0 else 1.0)
                + weight * float(np.mean([closeness(question, tokens) for question in questions]))
                for hit, tokens in zip(head, passages, strict=True)]
    order = sorted(range(len(head)), key=lambda position: -combined[position])
    return [head[position] for position in order] + rest


def reads(model: str | None, query: str) -> bool:
    """Whether the model's word pieces can be trusted with the query: not a question in Han characters (Chinese)
    for a model trained on English only (its pieces of Han characters carry little meaning: on debian-zh with
    all-MiniLM-L6-v2, re-reading put the right section first for 17 of 32 questions against fused order's 22)."""
    return not (CJK_RUN.search(query) and embedding.english_only(model))


class TokenCache:
    """Word-piece matrices of passages by (model, text), float16, bounded in bytes, least recently used out first."""

    def __init__(self, budget: int = CACHE_BYTES):
        self.budget = budget
        self.size = 0
        self._rows: collections.OrderedDict[tuple[str, str], np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        with self._lock:
            found = self._rows.get(key)
            if found is not None:
                self._rows.move_to_end(key)
            return found

    def put(self, key: tuple[str, str], matrix: np.ndarray) -> None:
        stored = matrix.astype(np.float16)
        with self._lock:
            if key in self._rows:
                return
            self._rows[key] = stored
            self.size += stored.nbytes
            while self.size > self.budget and len(self._rows) > 1:
                _, dropped = self._rows.popitem(last=False)
                self.size -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self.size = 0


_cache = TokenCache()


def passage_tokens(texts: Sequence[str], *, model: str | None, store: TokenStore | None = None) -> list[np.ndarray]:
    """Each passage's word-piece rows (float32): from the version's store, the cache, or computed in one batch
    for those missing."""
    name = model or embedding.default_model_name()
    found = [stored(store, text) if store is not None else None for text in texts]
    found = [matrix if matrix is not None else _cache.get((name, text)) for matrix, text in zip(found, texts,
                                                                                                 strict=True)]
    missing = [position for position, matrix in enumerate(found) if matrix is None]
    if missing:
        computed = embedding.embed_tokens([texts[p] for p in missing], model=model, role=embedding.PASSAGE)
        for position, matrix in zip(missing, computed, strict=True):
            _cache.put((name, texts[position]), matrix)
            found[position] = matrix
    return [matrix.astype(np.float32) for matrix in found]


def stored(store: TokenStore, text: str) -> np.ndarray | None:
    """The store's rows of a passage, or None (not stored, or a store of another width: a mixed-up folder)."""
    matrix = store.get(text)
    return matrix if matrix is not None and len(matrix) else None
