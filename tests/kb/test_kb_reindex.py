"""``manage.py kb_reindex --backend milvus`` moves bases to Milvus without a gap in service."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from kb.search import hybrid
from kb.search_backends import forget_backends
from tests.kefu.test_preflight import closed_port

DOCS = {
    "returns.md": b"# Returns\n\nYou can return any item within thirty days of delivery.\n",
    "warranty.md": b"# Warranty\n\nThe dishwasher model DW-9000 has a five year warranty on the motor.\n",
}


@pytest.fixture
def milvus(settings, milvus_uri):
    settings.KEFU_MILVUS_URI = milvus_uri
    forget_backends()
    yield milvus_uri
    forget_backends()


def test_kb_reindex_moves_a_local_base_to_milvus(kb, ingest, milvus):
    # given a base served by the local backend
    for name, data in DOCS.items():
        ingest(kb, name, data)
    kb.refresh_from_db()
    before = kb.active_index
    assert before.backend == "local"
    # when it is reindexed onto Milvus
    out = StringIO()
    call_command("kb_reindex", kb.slug, "--backend", "milvus", stdout=out)
    # then a newer version on Milvus serves the same answers, and the command says so
    kb.refresh_from_db()
    assert kb.active_index.backend == "milvus" and kb.active_index.number > before.number
    assert f"{kb.slug}: v{kb.active_index.number} on milvus" in out.getvalue()
    assert hybrid(kb, "DW-9000 motor", 1)[0].document_title == "warranty"


def test_kb_reindex_refuses_a_milvus_that_does_not_answer(kb, ingest, settings):
    ingest(kb, "returns.md", DOCS["returns.md"])
    kb.refresh_from_db()
    active = kb.active_index_id
    settings.KEFU_MILVUS_URI = f"http://127.0.0.1:{closed_port()}"
    settings.KEFU_MILVUS_TIMEOUT_S = 1.0
    forget_backends()
    try:
        with pytest.raises(CommandError, match="milvus search backend does not answer"):
            call_command("kb_reindex", "--backend", "milvus")
    finally:
        forget_backends()
    kb.refresh_from_db()
    assert kb.active_index_id == active  # nothing was switched
