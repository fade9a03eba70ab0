"""Fixtures for the kb tests: a temp data dir per test, one embedder per session, small bases."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def kb_data_dir(data_dir):
    """Every kb test gets the shared per-test data dir (tests/conftest.py)."""
    return data_dir


@pytest.fixture
def kb(db):
    from kb.services import knowledge_base_create

    return knowledge_base_create(name="Test KB", chunk_size=64, chunk_overlap=8)


@pytest.fixture
def ingest(embedder):
    """Upload bytes and run the ingestion function synchronously; returns the Document."""
    from kb.ingestion import document_ingest
    from kb.services import document_upload

    def run(kb, filename: str, data: bytes, **kwargs):
        result = document_upload(knowledge_base=kb, filename=filename, data=data, enqueue=False, **kwargs)
        return document_ingest(document_id=result.document.pk)

    return run


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory):
    """A Milvus for the tests, through Milvus Lite.

    Embedded mode: a Lite file, served inside the test process (as ``KEFU_MILVUS_URI=/path/x.db`` does).
    Service mode (REDIS_URL set): ``python -m milvus_lite server`` as a separate process on a free port,
    reached over gRPC as a Milvus server would be.
    """
    pytest.importorskip("milvus_lite")
    data = tmp_path_factory.mktemp("milvus")
    if not os.environ.get("REDIS_URL"):
        yield str(data / "kefu.db")
        return
    from tests.kb.milvus_server import milvus_lite_server

    with milvus_lite_server(data) as uri:
        yield uri


@pytest.fixture(params=["local", "milvus"])
def search_backend(request, settings):
    """Run the test once per search backend; Milvus starts each test with no Kefu collections."""
    from kb.search_backends import forget_backends

    settings.KEFU_SEARCH_BACKEND = request.param
    if request.param == "milvus":
        settings.KEFU_MILVUS_URI = request.getfixturevalue("milvus_uri")
        settings.KEFU_MILVUS_TIMEOUT_S = 10.0
        milvus_collections_drop()
    yield request.param
    if request.param == "milvus":
        milvus_collections_drop()
    forget_backends()


def milvus_collections_drop() -> None:
    """Drop Kefu's collections: database ids repeat between tests (rolled-back SQLite sequences)."""
    from kb.search_backends import backend_named

    backend = backend_named("milvus")
    for name in backend.collections():
        backend.call("schema", "drop_collection", name)
    backend.close()
