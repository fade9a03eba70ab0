"""Milvus stopping in the middle of a search: the chat API answers its JSON 503, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.chat.conftest import build_support_kb
from tests.kb.milvus_server import free_port, start, stop

ORIGIN = "https://shop.example.com"


@pytest.fixture
def milvus_server(tmp_path, settings):
    """Milvus Lite as its own process (as a Milvus server runs), with Kefu pointed at it."""
    pytest.importorskip("milvus_lite")
    from kb.search_backends import forget_backends

    process = start(tmp_path / "milvus", free_port())
    port = process.args[process.args.index("--port") + 1]
    settings.KEFU_SEARCH_BACKEND = "milvus"
    settings.KEFU_MILVUS_URI = f"http://127.0.0.1:{port}"
    settings.KEFU_MILVUS_TIMEOUT_S = 3.0
    forget_backends()
    yield process
    forget_backends()
    if process.poll() is None:
        stop(process)


def test_milvus_stopping_mid_search_gives_the_json_503(milvus_server, db, embedder, client, monkeypatch):
    from chat.models import WidgetKey
    from kb.search_backends.milvus import MilvusBackend

    # given a base indexed in Milvus and a widget asking it questions
    kb = build_support_kb()
    assert kb.active_index.backend == "milvus"
    key = WidgetKey.objects.create(knowledge_base=kb, name="shop", allowed_origins=[ORIGIN])
    # when Milvus is killed between the BM25 and the dense half of a search
    real_call = MilvusBackend.call
    searches = []

    def call(self, operation, method, *args, **kwargs):
        if operation == "search":
            searches.append(method)
            if len(searches) == 2:
                stop(milvus_server)
        return real_call(self, operation, method, *args, **kwargs)

    monkeypatch.setattr(MilvusBackend, "call", call)
    errors_before = search_errors()
    response = client.post("/api/v1/chat/messages", data=json.dumps({"text": "How do I apply for a drilling permit?"}),
                           content_type="application/json", HTTP_X_KEFU_KEY=key.public_key, HTTP_ORIGIN=ORIGIN)
    # then the first half ran, the second found Milvus gone, and the customer gets the retryable JSON 503
    assert len(searches) == 2 and milvus_server.poll() is not None
    assert response.status_code == 503, response.content[:500]
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"] == "5"
    assert search_errors() == errors_before + 1  # kefu_search_backend_errors_total{backend="milvus"}


def search_errors() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("kefu_search_backend_errors_total",
                                     {"backend": "milvus", "operation": "search"}) or 0.0
