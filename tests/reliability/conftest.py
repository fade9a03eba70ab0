"""Fixtures for the reliability corpus: a served knowledge base, a widget key, a staff client, a fake generator.

Everything is real — database, embedder, hybrid search, index files, the upload view,
the ingestion task — except the generator, which stands in for the inference worker
by writing the real token stream (see :class:`tests.chat.conftest.FakeGenerator`).
"""

from __future__ import annotations

import os

import pytest

from tests.chat import conftest as chat_fixtures
from tests.chat.conftest import DOCUMENT, sse_events  # noqa: F401 (sse_events: shared with the chat tests)
from tests.conftest import staff_member

fake_generator = chat_fixtures.fake_generator  # the chat tests' fixture, registered here too

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ORIGIN = "https://shop.example.com"
OTHER_ORIGIN = "https://other.example.org"
# What a served base must keep answering with, before and after a bad upload.
PROBE_QUERIES = ("drilling permit for a heat pump", "how long does a tiled roof last", "opening hours")
# Content of the second base: it must never reach a visitor of the first one.
SECRET_OF_B = "The Nightingale vault code is 4417-ZETA."
SYSTEM_PROMPT_A = "You are Kefu for Nordbygg. Internal note ORCHID-93: never offer discounts above 5 percent."


@pytest.fixture(autouse=True)
def reliability_data_dir(data_dir):
    """The shared per-test data dir (tests/conftest.py) and an empty local cache."""
    from django.core.cache import cache

    cache.clear()
    return data_dir


def build_base(name: str, documents: dict[str, str], *, system_prompt: str = ""):
    """A base with these documents ingested and indexed (three or more: BM25's idf needs them)."""
    from chat.models import ChatProfile
    from kb.indexing import index_build
    from kb.ingestion import document_ingest
    from kb.services import document_upload, knowledge_base_create

    kb = knowledge_base_create(name=name, chunk_size=64, chunk_overlap=8)
    for filename, text in documents.items():
        upload = document_upload(knowledge_base=kb, filename=filename, data=text.encode(), enqueue=False)
        document_ingest(document_id=upload.document.pk)
    index_build(knowledge_base_id=kb.pk)
    if system_prompt:
        ChatProfile.objects.create(knowledge_base=kb, system_prompt=system_prompt)
    kb.refresh_from_db()
    return kb


BASE_A_DOCUMENTS = {
    "services.md": DOCUMENT,
    "hours.md": "# Opening hours\n\nWe are open Monday to Friday, 8:00 to 17:00. The office is closed on holidays.\n",
    "warranty.md": "# Warranty\n\nAll renovation work comes with a five-year warranty on workmanship.\n",
}
BASE_B_DOCUMENTS = {
    "vault.md": f"# Vault\n\n{SECRET_OF_B} Only the night shift may open the vault.\n",
    "shifts.md": "# Shifts\n\nThe night shift starts at 22:00 and ends at 06:00.\n",
    "parking.md": "# Parking\n\nStaff park in the basement garage, level minus two.\n",
}


@pytest.fixture
def base_a(db, embedder):
    return build_base("Nordbygg", BASE_A_DOCUMENTS, system_prompt=SYSTEM_PROMPT_A)


@pytest.fixture
def base_b(db, embedder):
    return build_base("Vault", BASE_B_DOCUMENTS)


@pytest.fixture
def key_a(base_a):
    from chat.models import WidgetKey

    return WidgetKey.objects.create(knowledge_base=base_a, name="shop", allowed_origins=[ORIGIN])


@pytest.fixture
def key_b(base_b):
    from chat.models import WidgetKey

    return WidgetKey.objects.create(knowledge_base=base_b, name="vault", allowed_origins=[OTHER_ORIGIN])


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(staff_member("staff", password="pw-staff-123"))
    return client


@pytest.fixture
def echo_generator(fake_generator, monkeypatch):
    """The worst well-behaved model: it repeats its whole user turn (passages and question) as the answer."""
    real_start = fake_generator.start

    def start(*, messages, max_new_tokens, message_id):
        fake_generator.answer = "\n".join(m["content"] for m in messages if m["role"] != "system")
        return real_start(messages=messages, max_new_tokens=max_new_tokens, message_id=message_id)

    from chat import generation

    monkeypatch.setattr(generation, "generation_start", start)
    return fake_generator


def index_snapshot(kb) -> tuple:
    """The active index version and what it returns for the probe queries (chunk ids and scores)."""
    from kb.search import hybrid

    kb.refresh_from_db()
    hits = tuple((query, tuple((hit.chunk_id, round(hit.score, 6)) for hit in hybrid(kb, query, 5)))
                 for query in PROBE_QUERIES)
    return kb.active_index_id, hits


# --- the chat API over HTTP, as the widget calls it -------------------------------------------
def api_post(client, path: str, body, *, key: str | None, origin: str = ORIGIN,
             content_type: str = "application/json", **headers):
    import json

    if key is not None:
        headers["HTTP_X_KEFU_KEY"] = key
    if origin:
        headers["HTTP_ORIGIN"] = origin
    data = json.dumps(body) if isinstance(body, dict | list) else body
    return client.post(path, data=data, content_type=content_type, **headers)


def ask(client, widget_key, text, **extra):
    """Post a question from a page on the key's first allowed origin."""
    return api_post(client, "/api/v1/chat/messages", {"text": text, **extra}, key=widget_key.public_key,
                    origin=widget_key.allowed_origins[0])


def streamed(client, started, origin: str = ORIGIN) -> tuple[str, list[dict]]:
    """Everything a reader of the reply's stream receives: the raw text of all events, and the events."""
    import json

    response = client.get(started.json()["stream_url"].replace("http://testserver", ""), HTTP_ORIGIN=origin)
    events = sse_events(response)
    return json.dumps(events, ensure_ascii=False), events


def row_counts() -> dict[str, int]:
    from chat.models import Conversation, Feedback, Message
    from inference.models import GenerationJob

    return {"conversations": Conversation.objects.count(), "messages": Message.objects.count(),
            "feedback": Feedback.objects.count(), "jobs": GenerationJob.objects.count()}
