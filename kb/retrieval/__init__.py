"""Retrieval stages: BM25 (sparse), FAISS (dense), fusion, and the hybrid search composing them."""
