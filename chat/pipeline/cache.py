"""Stage 2, the answer cache: frequent questions answered again without retrieval or generation.

An exact hit compares the question's cache form (NFKC, case-folded, punctuation and
whitespace removed) by hash; a semantic hit compares its embedding with the recently
cached questions of the same base (cosine ≥ ``KEFU_CHAT_CACHE_SIMILARITY``). Entries
are keyed by knowledge base **and** index version: after an upload the base has a new
version and nothing built on the old documents is served. Only answers that
succeeded go in (:func:`answer_cache_store`), an answer rated down comes out
(:func:`answer_cache_evict`), and follow-ups that lean on history are neither served
nor stored (the caller checks :attr:`chat.pipeline.history.Standalone.depends_on_history`).
"""

from __future__ import annotations

import hashlib
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db.models import Count, F, Max

from chat.models import CachedAnswer
from kb.models import KnowledgeBase


@dataclass(frozen=True)
class CacheHit:
    entry_id: int
    answer: str
    citations: list
    kind: str  # "exact" | "semantic"
    similarity: float
    source_message_id: object = None  # the assistant message the answer was first given in


def cache_form(text: str) -> str:
    """The text two questions share when they are the same question: NFKC, case-fold, no punctuation."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = [ch if not unicodedata.category(ch).startswith(("P", "S")) else " " for ch in text]
    return " ".join("".join(kept).split())


def question_key(text: str) -> str:
    return hashlib.sha256(cache_form(text).encode()).hexdigest()


# Per process: (base, version) → (newest entry id, count, ids, matrix). Reloaded when the table changes.
_matrices: dict[tuple[int, int], tuple[int, int, list[int], np.ndarray]] = {}
_matrices_lock = threading.Lock()


def answer_cache_lookup(*, kb_id: int, index_version: int, question: str, query_vector=None,
                        exact: bool = True) -> CacheHit | None:
    """An exact hit (unless ``exact`` is off), else a semantic one (when ``query_vector`` is given), else None."""
    entries = CachedAnswer.objects.filter(knowledge_base_id=kb_id, index_version=index_version).only(*SERVED_FIELDS)
    found = only_row(entries.filter(question_key=question_key(question))) if exact else None
    if found is not None:
        return served(found, kind="exact", similarity=1.0)
    if query_vector is None:
        return None
    ids, matrix = cached_matrix(kb_id, index_version)
    if not ids:
        return None
    scores = matrix @ np.asarray(query_vector, dtype=np.float32)
    best = int(np.argmax(scores))
    if float(scores[best]) < settings.KEFU_CHAT_CACHE_SIMILARITY:
        return None
    entry = only_row(entries.filter(pk=ids[best]))
    return served(entry, kind="semantic", similarity=float(scores[best])) if entry is not None else None


def only_row(queryset):
    """The one row of a query on a unique key, or None: LIMIT 1 without the ``ORDER BY id`` that ``first()`` adds
    (its ordering expressions were a tenth of compiling the lookup every ask makes)."""
    return next(iter(queryset[:1]), None)


SERVED_FIELDS = ("id", "answer", "citations", "source_message_id")  # a hit reads these (not the embedding)


def served(entry, *, kind: str, similarity: float) -> CacheHit:
    hit_count(entry.pk)
    return CacheHit(entry.pk, entry.answer, list(entry.citations), kind, similarity, entry.source_message_id)


# Hits are counted in memory and written at most once per ``KEFU_CHAT_CACHE_HITS_FLUSH_S`` (one UPDATE per
# entry then): in a burst of cached answers, an UPDATE per hit was a fifth of each answer's queries.
_pending_hits: Counter = Counter()
_hits_lock = threading.Lock()
_hits_flushed_at = 0.0


def hit_count(entry_id: int) -> None:
    with _hits_lock:
        _pending_hits[entry_id] += 1
        due = time.monotonic() - _hits_flushed_at >= settings.KEFU_CHAT_CACHE_HITS_FLUSH_S
    if due:
        hits_flush()


def hits_forget() -> None:
    """Drop the counted hits unwritten (tests: a rolled-back database gives the next test the same ids)."""
    with _hits_lock:
        _pending_hits.clear()


def hits_flush() -> int:
    """Write the counted hits (also at exit); returns how many entries were updated.

    One UPDATE per distinct count, not per entry: a second of a burst hits dozens of entries a few times
    each, and the request that flushes waited for every statement (40 UPDATEs in the bench's burst). Ids go in
    order, so two processes flushing at once lock rows in the same order."""
    global _hits_flushed_at
    with _hits_lock:
        pending = dict(_pending_hits)
        _pending_hits.clear()
        _hits_flushed_at = time.monotonic()
    by_count: dict[int, list[int]] = {}
    for entry_id, count in pending.items():
        by_count.setdefault(count, []).append(entry_id)
    for count, entry_ids in sorted(by_count.items()):
        CachedAnswer.objects.filter(pk__in=sorted(entry_ids)).update(hits=F("hits") + count)
    return len(pending)


def cached_matrix(kb_id: int, index_version: int) -> tuple[list[int], np.ndarray]:
    """The recent entries' embeddings as one matrix, rebuilt only when entries were added or removed."""
    entries = CachedAnswer.objects.filter(knowledge_base_id=kb_id, index_version=index_version)
    state = entries.aggregate(newest=Max("id"), count=Count("id"))
    key = (kb_id, index_version)
    with _matrices_lock:
        known = _matrices.get(key)
        if known is not None and known[:2] == (state["newest"] or 0, state["count"]):
            return known[2], known[3]
    rows = list(entries.order_by("-id").values_list("id", "embedding")[: settings.KEFU_CHAT_CACHE_SIZE])
    ids = [row_id for row_id, _ in rows]
    matrix = (np.stack([np.frombuffer(bytes(blob), dtype=np.float32) for _, blob in rows])
              if rows else np.zeros((0, 0), dtype=np.float32))
    with _matrices_lock:
        _matrices[key] = (state["newest"] or 0, state["count"], ids, matrix)
    return ids, matrix


def answer_cache_store(*, message, question: str, query_vector, kb_id: int, index_version: int) -> None:
    """Remember a successful answer (an assistant message) for its base and index version, while that version
    is still the one the base serves."""
    if query_vector is None or not message.text or superseded(kb_id, index_version):
        return
    CachedAnswer.objects.get_or_create(
        knowledge_base_id=kb_id, index_version=index_version, question_key=question_key(question),
        defaults={"normalized_question": cache_form(question), "answer": message.text,
                  "citations": message.citations, "source_message": message,
                  "embedding": np.asarray(query_vector, dtype=np.float32).tobytes()},
    )


def superseded(kb_id: int, index_version: int) -> bool:
    """The base serves another index version now: an answer built on this one would never be served again, and
    the question's vector, made with the base's current model, may belong to another embedding space than the
    version's entries (a model switch while the answer was generated) — never stored beside them."""
    active = only_row(KnowledgeBase.objects.filter(pk=kb_id).values_list("active_index_id", flat=True))
    return active is not None and active != index_version


def answer_cache_forget(*, kb_id: int) -> int:
    """Drop every cache entry of a base (its search results changed without a new index version); returns how
    many."""
    deleted, _ = CachedAnswer.objects.filter(knowledge_base_id=kb_id).delete()
    return deleted


def answer_cache_evict(*, message) -> int:
    """Drop every cache entry built from this answer (it was rated down); returns how many."""
    deleted, _ = CachedAnswer.objects.filter(source_message=message).delete()
    return deleted
