"""Dense retrieval: FAISS inner product over L2-normalised vectors (so scores are cosines).

Below ``KEFU_KB_HNSW_THRESHOLD`` vectors the index is exact (``IndexFlatIP``); above it,
HNSW (M=32) whose recall against exact search is checked in tests. faiss is imported in
the functions that need it: the web process must start without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HNSW_M = 32  # graph degree: recall vs memory; 32 is FAISS's usual choice for 384-d
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128  # search breadth; raise for recall, lower for speed


class DenseIndex:
    def __init__(self, index, kind: str):
        self.index = index
        self.kind = kind

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def top(self, query_vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and cosine similarities of the k nearest vectors, best first."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores, ids = self.index.search(np.ascontiguousarray(query_vector, dtype=np.float32).reshape(1, -1), k)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]

    def save(self, directory: Path) -> None:
        import faiss  # lazy: the web process must start without faiss (see the module docstring)

        faiss.write_index(self.index, str(directory / "dense.faiss"))
        (directory / "dense-kind.txt").write_text(self.kind)

    @classmethod
    def load(cls, directory: Path) -> DenseIndex:
        import faiss  # lazy: the web process must start without faiss (see the module docstring)

        index = faiss.read_index(str(directory / "dense.faiss"))
        kind = (directory / "dense-kind.txt").read_text()
        if kind == "hnsw":
            index.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(index, kind)


def build_dense(vectors: np.ndarray, *, dimension: int, hnsw_threshold: int) -> DenseIndex:
    """Exact flat index for small bases, HNSW at ``hnsw_threshold`` vectors and above."""
    import faiss  # loaded lazily: only processes that build or search indexes need it

    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dimension)
    if len(vectors) >= hnsw_threshold:
        index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        kind = "hnsw"
    else:
        index = faiss.IndexFlatIP(dimension)
        kind = "flat"
    if len(vectors):
        index.add(vectors)
    return DenseIndex(index, kind)
