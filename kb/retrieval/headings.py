"""Section headings as index rows of their own: a question that names a section finds its text.

A chunk's stored text is the section body only; its heading path ("Chapter 7 > 7.2. What is a
Debian source package?") is kept beside it for citations. In manuals, help centres and FAQ-style
documents the heading is the best summary of the section — often the very question a customer
asks — yet neither retriever saw it: BM25 indexed the body, the embedder embedded the body.

Each section (a document's run of chunks under one heading path) therefore gets one extra row in
both indexes, pointing at the section's first chunk (:data:`kb.indexing.ROW_HEADING`):
- BM25 indexes the heading path, numbering stripped, so heading words count as their own short
  field (a BM25F-style boost: a term in a five-word heading weighs far more than in a body);
- the dense index holds the embedding of the last heading, the section's own title.
Search collapses rows to items keeping each item's best row, so a chunk scores as the better of
its body and its heading. Headings are embedded when the index is built, in one batch, and
remembered per process (a bounded memo keyed by model and text), so a rebuild re-embeds only new
headings.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from kb import embedding  # embedding.embed_texts looked up per call: tests swap it for a cache
from kb.models import Chunk

NUMBERING = re.compile(r"^\s*(?:(?:chapter|section|part|appendix)\s+)?[\dA-Z]?[\d.]*\d[\d.]*\s*|^\s*第\s*\d+\s*[章节部分]\s*",
                       re.IGNORECASE)
SEPARATOR = " > "
MEMO_LIMIT = 20_000

_memo: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_memo_lock = threading.Lock()


@dataclass(frozen=True)
class SectionHead:
    chunk_id: int  # the section's first chunk: the row's item
    bm25_text: str  # the heading path without numbering
    dense_text: str  # the last heading without numbering


def without_numbering(heading: str) -> str:
    """ "7.2. What is a source package?" → "What is a source package?"; "第 1 章 定义" → "定义"."""
    return " ".join(NUMBERING.sub("", heading).split())


def section_heads(chunks: Iterable[tuple[int, int, str]]) -> list[SectionHead]:
    """One head per (document, heading path) run, from ``(chunk id, document id, heading path)`` in id order."""
    heads: list[SectionHead] = []
    seen: set[tuple[int, str]] = set()
    for chunk_id, document_id, path in chunks:
        if not path or (document_id, path) in seen:
            continue
        seen.add((document_id, path))
        parts = [without_numbering(part) for part in path.split(SEPARATOR)]
        parts = [part for part in parts if part]
        if parts:
            heads.append(SectionHead(chunk_id, " ".join(parts), parts[-1]))
    return heads


def head_vectors(heads: list[SectionHead], model: str, dim: int) -> np.ndarray:
    """The dense vectors of the heads' titles by ``model``, (len(heads), dim), embedding each text once."""
    out = np.zeros((len(heads), dim), dtype=np.float32)
    missing: dict[str, list[int]] = {}
    with _memo_lock:
        for position, head in enumerate(heads):
            known = _memo.get((model, head.dense_text))
            if known is not None and known.shape[0] == dim:
                out[position] = known
            else:
                missing.setdefault(head.dense_text, []).append(position)
    if missing:
        texts = list(missing)
        vectors = embedding.embed_texts(texts, model=model or None)
        with _memo_lock:
            for text, vector in zip(texts, vectors, strict=True):
                out[missing[text]] = vector
                _memo[(model, text)] = vector
                _memo.move_to_end((model, text))
            while len(_memo) > MEMO_LIMIT:
                _memo.popitem(last=False)
    return out


def forget() -> None:
    """Drop the remembered heading vectors (tests; a model file replaced in place)."""
    with _memo_lock:
        _memo.clear()


def heading_examples(kb_id: int) -> tuple[list[str], np.ndarray]:
    """The titles of a base's sections and their vectors in its active index: what the base is about.

    Read back from the active version's dense index (no embedding on the request path); empty when
    the base has no index, no headings, or an index that cannot give its vectors back.
    """
    from kb.indexing import ROW_HEADING, active_index  # lazy: kb.indexing imports this module

    index = active_index(kb_id)
    rows = getattr(index, "rows", None)
    reconstruct = getattr(getattr(getattr(index, "dense", None), "index", None), "reconstruct_batch", None)
    if rows is None or reconstruct is None:
        return [], np.zeros((0, 0), dtype=np.float32)
    row_ids = np.flatnonzero(rows.kinds == ROW_HEADING)
    if not row_ids.size:
        return [], np.zeros((0, 0), dtype=np.float32)
    chunk_ids = rows.refs[row_ids].tolist()
    found = dict(Chunk.objects.filter(pk__in=chunk_ids).values_list("id", "heading_path"))
    titles = {head.chunk_id: head.dense_text
              for head in section_heads((cid, 0, found.get(cid, "")) for cid in chunk_ids)}
    keep = [n for n, cid in enumerate(chunk_ids) if cid in titles]
    vectors = np.asarray(reconstruct(row_ids[keep].astype(np.int64)), dtype=np.float32)
    return [titles[chunk_ids[n]] for n in keep], vectors
