"""Fixtures for the chat tests: a small indexed support base, a widget key, and a fake generator.

The generator is the one thing faked: it stands in for the inference worker by writing
``token`` and ``done`` events to the real token stream (``inference.stream``) of a job,
exactly what the contract says a worker writes. Everything else — database, embedder,
hybrid search, cache — is real.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAQ = [
    ("What are your opening hours?", "We are open Monday to Friday, 8:00 to 17:00.", ["When are you open?"]),
    ("How long does it take to get a building permit?",
     "The statutory processing time is 10 weeks, with a possible extension to 20 weeks.", []),
    ("Do you offer a warranty on renovation work?",
     "Yes, all renovation work comes with a five-year warranty on workmanship.", []),
]
DOCUMENT = (
    "# Heat pumps\n\nA ground source heat pump needs a drilling permit from the municipality before work starts. "
    "Drilling usually takes two days. The borehole is typically 150 to 200 metres deep.\n\n"
    "# Roofing\n\nA tiled roof lasts about 50 years. Metal roofs need repainting every 15 to 20 years. "
    "We inspect every roof for moisture damage before quoting.\n"
)


@pytest.fixture(autouse=True)
def chat_data_dir(data_dir, isolated_cache):
    """The shared per-test data dir (tests/conftest.py) and an empty cache of its own (isolated_cache)."""
    return data_dir


_vectors: dict[tuple[str, str, str], object] = {}  # (model, role, text) → vector


@pytest.fixture(autouse=True)
def remembered_embeddings(monkeypatch):
    """The real embedder, but each distinct text is encoded once per session (the machine is shared)."""
    import numpy as np

    from kb import embedding

    real = embedding.embed_texts

    def embed_texts(texts, *, model=None, batch_size=64, on_batch=None, role=embedding.QUERY):
        model = model or embedding.default_model_name()
        missing = [t for t in dict.fromkeys(texts) if (model, role, t) not in _vectors]
        if missing:
            fresh = real(missing, model=model, batch_size=batch_size, role=role)
            for text, vector in zip(missing, fresh, strict=True):
                _vectors[(model, role, text)] = vector
        if on_batch is not None:
            on_batch(len(texts), len(texts))
        return np.stack([_vectors[(model, role, t)] for t in texts]) if texts else real(texts, model=model)

    monkeypatch.setattr(embedding, "embed_texts", embed_texts)


def build_support_kb(name: str = "Support"):
    from kb.indexing import index_build
    from kb.ingestion import document_ingest
    from kb.services import document_upload, faq_entries_embed, faq_entry_create, knowledge_base_create

    kb = knowledge_base_create(name=name, chunk_size=64, chunk_overlap=8)
    for question, answer, alternatives in FAQ:
        faq_entry_create(knowledge_base=kb, question=question, answer=answer, alternatives=alternatives,
                         rebuild=False)
    faq_entries_embed(knowledge_base_id=kb.pk)
    upload = document_upload(knowledge_base=kb, filename="services.md", data=DOCUMENT.encode(), enqueue=False)
    document_ingest(document_id=upload.document.pk)
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    return kb


@pytest.fixture
def support_kb(db, embedder):
    return build_support_kb()


@pytest.fixture
def widget_key(support_kb):
    from chat.models import WidgetKey

    return WidgetKey.objects.create(knowledge_base=support_kb, name="shop",
                                    allowed_origins=["https://shop.example.com"])


@dataclass
class FakeGenerator:
    """Stands in for the inference worker: records requests and writes their token streams."""

    answer: str = "Drilling needs a permit from the municipality [1]."
    pieces: list[str] | None = None
    write_immediately: bool = True
    requests: list[dict] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def start(self, *, messages, max_new_tokens, message_id):
        job_id = str(uuid.uuid4())
        self.requests.append({"job_id": job_id, "messages": messages, "max_new_tokens": max_new_tokens,
                              "message_id": message_id})
        if self.write_immediately:
            self.finish(job_id)
        return job_id

    def finish(self, job_id: str, *, answer: str | None = None) -> None:
        from inference.outcomes import GenerationDone
        from inference.stream import open_stream, write_done, write_token

        answer = self.answer if answer is None else answer
        stream = open_stream(job_id)
        for piece in self.pieces or split_tokens(answer):
            write_token(stream, piece)
        write_done(stream, GenerationDone(text=answer, prompt_tokens=120, completion_tokens=len(split_tokens(answer)),
                                          queue_ms=3.0, ttft_ms=40.0, tokens_per_s=25.0, finish_reason="stop"))

    def fail(self, job_id: str) -> None:
        from inference.outcomes import GenerationError
        from inference.stream import open_stream, write_error

        write_error(open_stream(job_id), GenerationError("worker_lost", "the inference worker stopped"))

    def stop(self, *, job_id):
        self.cancelled.append(job_id)
        return True


def split_tokens(text: str) -> list[str]:
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


@pytest.fixture
def fake_generator(monkeypatch, settings):
    """Embedded-mode token streams (in memory) written by a fake worker."""
    from chat import generation

    settings.REDIS_URL = None
    fake = FakeGenerator()
    monkeypatch.setattr(generation, "generation_start", fake.start)
    monkeypatch.setattr(generation, "generation_stop", fake.stop)
    return fake


def sse_events(response) -> list[dict]:
    """An SSE body as [{id, event, data}] (comments and retry lines skipped)."""
    import json

    from asgiref.sync import async_to_sync

    async def read():
        return [chunk async for chunk in response.streaming_content]

    body = b"".join(chunk if isinstance(chunk, bytes) else chunk.encode() for chunk in async_to_sync(read)())
    events = []
    for block in body.decode().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith(":") or ": " not in line:
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            events.append({"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])})
    return events


@pytest.fixture
def redis_cache(settings, redis_url):
    """The Django cache on the real Redis (REDIS_URL, else DB 15); this test's keys are removed around it.

    Only keys under its own prefix: ``cache.clear()`` would FLUSHDB, wiping streams, heartbeats and
    queues of anything else using that database at the same time.
    """
    import redis
    from django.core.cache import caches

    prefix = f"kefu-test-chat-{uuid.uuid4().hex[:8]}"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": redis_url, "KEY_PREFIX": prefix}}
    client = redis.Redis.from_url(redis_url)
    yield caches["default"]
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()
