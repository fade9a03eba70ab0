"""The local backend: each process loads FAISS + BM25 files of the active version (kb.indexing, kb.retrieval)."""

from __future__ import annotations

from kb.search_backends import LOCAL, BackendStatus


class LocalBackend:
    name = LOCAL

    def write(self, kb_id: int, version, *, model: str, fresh=None) -> dict:
        from kb.indexing import version_dir, write_version_files

        return write_version_files(kb_id, version_dir(kb_id, version.number), model=model, fresh=fresh)

    def load(self, kb_id: int, version_id: int, number: int, embedding_model: str):
        from kb.indexing import load_version

        return load_version(kb_id, version_id, number)

    def prune(self, kb_id: int, keep: set[int]) -> None:
        from kb.indexing import prune_old_versions

        prune_old_versions(kb_id)

    def status(self) -> BackendStatus:
        return BackendStatus(LOCAL, True, "in-process FAISS + BM25 indexes")
