"""Grouping questions by meaning: embeddings (cached per text) and agglomerative clustering.

Questions are embedded with the knowledge-base embedder (``kb.embedding``, normalised
vectors) and grouped by average-linkage clustering on cosine distance: two questions
land in one group when they are on average at least ``GROUP_SIMILARITY`` alike. Vectors
are cached by text hash — in this process (an LRU of ``MEMORY_VECTORS``) and in Django's
cache (shared by web processes in service mode) — so a page shown again embeds only the
questions that are new.
Budget: at most ``MAX_TEXTS`` texts per call; ~1 s to embed 500 new short questions on
one CPU core, clustering 500 points takes milliseconds, memory O(n²) floats (2 MB).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from django.core.cache import cache

GROUP_SIMILARITY = 0.72
MAX_TEXTS = 500
CACHE_SECONDS = 7 * 24 * 3600
MEMORY_VECTORS = 20_000  # 384 float32 each: ~30 MB at most

_memory: OrderedDict[str, bytes] = OrderedDict()
_memory_lock = threading.Lock()


def vector_key(text: str) -> str:
    return "analytics:qvec:" + hashlib.sha1(text.encode()).hexdigest()


def remembered(keys: list[str]) -> dict[str, bytes]:
    with _memory_lock:
        found = {key: _memory[key] for key in keys if key in _memory}
        for key in found:
            _memory.move_to_end(key)
    return found


def remember(vectors: dict[str, bytes]) -> None:
    with _memory_lock:
        _memory.update(vectors)
        while len(_memory) > MEMORY_VECTORS:
            _memory.popitem(last=False)


def embeddings(texts: Sequence[str]):
    """Normalised float32 vectors (n, D) for ``texts``, embedding only those not cached."""

    from kb.embedding import embed_texts  # sentence-transformers, loaded once per process

    keys = {text: vector_key(text) for text in texts}
    found = remembered(list(set(keys.values())))
    shared = cache.get_many([key for key in set(keys.values()) if key not in found])
    remember(shared)
    found.update(shared)
    missing = sorted({text for text, key in keys.items() if key not in found})
    if missing:
        fresh = embed_texts(missing, batch_size=64)
        new = {keys[text]: vector.tobytes() for text, vector in zip(missing, fresh, strict=True)}
        cache.set_many(new, timeout=CACHE_SECONDS)
        remember(new)
        found.update(new)
    return np.stack([np.frombuffer(found[keys[text]], dtype=np.float32) for text in texts])


def cluster_labels(vectors, *, similarity: float = GROUP_SIMILARITY) -> list[int]:
    """A group label per row: average-linkage clusters on cosine distance ≤ 1 - similarity."""
    if len(vectors) == 0:
        return []
    if len(vectors) == 1:
        return [0]
    from sklearn.cluster import AgglomerativeClustering  # only the staff pages need scikit-learn

    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                    distance_threshold=1.0 - similarity)
    return [int(label) for label in model.fit_predict(vectors)]


def central_index(vectors, members: list[int]) -> int:
    """The member closest to its group's mean: the phrasing that stands for the group."""
    centre = vectors[members].mean(axis=0)
    return members[int(np.argmax(vectors[members] @ centre))]
