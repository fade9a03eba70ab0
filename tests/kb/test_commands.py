"""Management commands: kb_create, kb_import (folders, FAQ sheets), kb_search --json, kb_eval --json."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from kb.models import Document, FaqEntry


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_import_search_and_eval(db, embedder, tmp_path):
    # given a folder with documents, an FAQ sheet and a broken file
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "returns.md").write_text("# Returns\n\nItems can be returned within thirty days.\n")
    (folder / "sub" / "shipping.txt").write_text("Shipping inside the EU takes three working days.\n")
    (folder / "faq.csv").write_text("question,answer\nDo you ship to Norway?,Yes, in five days.\n")
    (folder / "broken.pdf").write_bytes(b"no pdf here")
    # when
    assert "Created knowledge base" in run("kb_create", "Shop", "--chunk-size", "64", "--chunk-overlap", "8")
    imported = run("kb_import", "shop", str(folder))
    # then
    assert "3 ready, 1 failed" in imported and "4/4" in imported
    assert Document.objects.get(filename="broken.pdf").status == "failed"
    assert FaqEntry.objects.get().question == "Do you ship to Norway?"
    hits = json.loads(run("kb_search", "shop", "how long does delivery take", "--json"))
    assert hits[0]["document_title"] == "shipping" and "dense" in hits[0]["found_by"]
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"query": "can I send it back", "relevant": ["returns"]}) + "\n")
    metrics = json.loads(run("kb_eval", "shop", "--queries", str(queries), "--json"))
    assert set(metrics) == {"bm25", "dense", "hybrid"} and metrics["dense"]["R@10"] == 1.0
    assert run("kb_import", "shop", str(folder)).count("already present") == 1


def test_unknown_knowledge_base_is_a_command_error(db):
    with pytest.raises(CommandError, match="No knowledge base"):
        call_command("kb_search", "nope", "query")
