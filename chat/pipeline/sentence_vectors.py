"""Passage sentences' vectors, remembered per process (LRU, ``MAX_ENTRIES``).

The answerability stage and the extract (or the support gate of a generated answer) embed the same
sentences of the same top passages for one question, and popular questions bring the same passages
back: an encoder pass over a dozen sentences costs hundreds of milliseconds on a loaded CPU, a lookup
nothing. An entry is keyed by the model's name and the text, and holds a weak reference to the encoder
that made it: a model loaded again under the same name (evicted from the encoder LRU, replaced files)
does not reuse its predecessor's vectors. Memory: ``MAX_ENTRIES`` × (4 bytes × the model's width + the
sentence) ≈ 15 MB for MiniLM.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np

from kb import embedding  # embedding.embed_texts looked up per call: tests swap it for a cache
from kb.embedding import default_model_name, get_embedder

MAX_ENTRIES = 8192

_vectors: OrderedDict[tuple[str, str], tuple[weakref.ref, np.ndarray]] = OrderedDict()
_lock = threading.Lock()


def sentence_vectors(texts: list[str], *, model: str | None = None) -> np.ndarray:
    """(len(texts), D) normalised vectors by ``model`` (default: the process default); the ones not
    remembered are embedded in one batch."""
    name = model or default_model_name()
    encoder = get_embedder(name)
    known: dict[str, np.ndarray] = {}
    with _lock:
        for text in texts:
            entry = _vectors.get((name, text))
            if entry is not None and entry[0]() is encoder:
                known[text] = entry[1]
                _vectors.move_to_end((name, text))
    missing = [text for text in dict.fromkeys(texts) if text not in known]
    if missing:
        fresh = embedding.embed_texts(missing, model=model, batch_size=64)
        made_by = weakref.ref(encoder)
        with _lock:
            for text, vector in zip(missing, fresh, strict=True):
                _vectors[(name, text)] = (made_by, vector)
                known[text] = vector
            while len(_vectors) > MAX_ENTRIES:
                _vectors.popitem(last=False)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([known[text] for text in texts])


def forget_sentence_vectors() -> None:
    with _lock:
        _vectors.clear()
