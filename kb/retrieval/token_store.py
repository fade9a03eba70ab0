"""Passages' word-piece vectors, computed when an index version is built and kept beside its files.

Late interaction (:mod:`kb.retrieval.late_interaction`) reads the head of every fused list word piece by word
piece. Computing a passage's pieces at question time is a forward pass of the embedder over the passage: with
all-mpnet-base-v2 that was ~75 % of a direct answer's time, and a burst, an answerability fit or a regression
gate, each reading hundreds of passages, kept missing the per-process cache. So every version stores the pieces
of every passage a hit can carry — each chunk's text and each FAQ entry's "question\\nanswer" — once:

    tokens.npy        (N, D) float16, every passage's rows one after another (memory-mapped when loaded)
    token-keys.npy    (P,) 20-byte SHA-1 of each passage's text
    token-spans.npy   (P, 2) int64, where each passage's rows start and end in tokens.npy

A build copies the rows of passages the active version already stored with the same model files and computes
only the others, so adding a document costs its own passages. A version without the files (built before they
existed, or on the Milvus backend) computes pieces on demand as before.

Size: pieces × D × 2 bytes; the demo base's 1,012 passages on all-mpnet-base-v2 (768-d, ~50 pieces each) 77 MB,
written in ~3 min on 2 Zen 3 cores. With it the demo's answerability fit took 175 s instead of over 10 min.
``KEFU_KB_TOKEN_STORE=0`` leaves the files out (question-time computation, less disk).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb import embedding

log = logging.getLogger(__name__)

VECTORS = "tokens.npy"
KEYS = "token-keys.npy"
SPANS = "token-spans.npy"
BATCH = 32  # passages per forward pass (sorted by length, so a batch pads little)


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


@dataclass(frozen=True)
class TokenStore:
    """One version's stored word-piece rows, looked up by passage text."""

    vectors: np.ndarray  # (N, D) float16, memory-mapped
    spans: dict[bytes, tuple[int, int]]

    def get(self, text: str) -> np.ndarray | None:
        """The passage's rows (float16, read-only), or None when this version did not store it."""
        span = self.spans.get(text_key(text))
        return None if span is None else self.vectors[span[0]:span[1]]

    def __len__(self) -> int:
        return len(self.spans)


def store_load(directory: Path) -> TokenStore | None:
    """The version folder's store, or None when it has none (or an unreadable one: pieces are then computed)."""
    try:
        vectors = np.load(directory / VECTORS, mmap_mode="r")
        keys = np.load(directory / KEYS)
        spans = np.load(directory / SPANS)
    except (OSError, ValueError):
        return None
    return TokenStore(vectors, {bytes(key): (int(start), int(end)) for key, (start, end) in zip(keys, spans,
                                                                                                 strict=True)})


def store_write(directory: Path, texts: Sequence[str], *, model: str | None,
                previous: TokenStore | None = None, known: Mapping[str, np.ndarray] | None = None) -> int:
    """Store the word pieces of ``texts`` (each once) in ``directory``; ``previous``: a store of the same model
    files whose rows are copied instead of computed; ``known``: rows already computed by that model (a model
    switch's re-embedding computes its chunks' with their vectors). Returns how many passages were computed."""
    unique = list(dict.fromkeys(text for text in texts if text))
    rows: dict[str, np.ndarray] = {}
    missing = []
    known = known or {}
    for text in unique:
        found = previous.get(text) if previous is not None else None
        found = known.get(text) if found is None else found
        if found is not None:
            rows[text] = np.asarray(found, dtype=np.float16)
        else:
            missing.append(text)
    for text, matrix in zip(missing, computed_rows(missing, model=model), strict=True):
        rows[text] = matrix
    dimension = next((matrix.shape[1] for matrix in rows.values() if matrix.ndim == 2 and matrix.shape[1]),
                     embedding.embedding_dimension(model))
    matrices = [rows[text].reshape(-1, dimension) for text in unique]
    ends = np.cumsum([len(matrix) for matrix in matrices], dtype=np.int64)
    spans = np.stack([ends - [len(matrix) for matrix in matrices], ends], axis=1) if unique else np.zeros((0, 2),
                                                                                                         np.int64)
    vectors = np.concatenate(matrices) if matrices else np.zeros((0, dimension), dtype=np.float16)
    np.save(directory / VECTORS, vectors.astype(np.float16))
    np.save(directory / KEYS, np.array([text_key(text) for text in unique], dtype="S20"))
    np.save(directory / SPANS, spans.astype(np.int64))
    log.info("token store: %d passages (%d computed, %d copied), %.1f MB", len(unique), len(missing),
             len(unique) - len(missing), vectors.nbytes / 2**20)
    return len(missing)


def computed_rows(texts: list[str], *, model: str | None) -> list[np.ndarray]:
    """Each text's word-piece rows (float16), computed longest first in batches of ``BATCH``."""
    order = sorted(range(len(texts)), key=lambda position: -len(texts[position]))
    out: list[np.ndarray | None] = [None] * len(texts)
    for start in range(0, len(order), BATCH):
        positions = order[start:start + BATCH]
        matrices = embedding.embed_tokens([texts[p] for p in positions], model=model, role=embedding.PASSAGE)
        for position, matrix in zip(positions, matrices, strict=True):
            out[position] = matrix.astype(np.float16)
    return out  # type: ignore[return-value]
