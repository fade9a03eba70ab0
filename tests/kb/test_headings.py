"""Section headings as index rows: a question that names a section finds the section's text."""

from __future__ import annotations

from kb.indexing import ROW_CHUNK, ROW_HEADING, active_index
from kb.retrieval.headings import section_heads, without_numbering
from kb.search import search

DOCS = {
    "router.md": (b"# Home network\n\n## 4.2. How do I reset the router password?\n\n"
                  b"Hold the small button on the back for ten seconds. Then sign in with admin and choose a new one.\n\n"
                  b"## 4.3. Opening hours of the shop\n\nWe are open Monday to Friday from nine to five.\n"),
    "shipping.md": b"# Shipping\n\nWe ship to every country in the EU. Delivery takes three days.\n",
}


def test_numbering_is_stripped_from_headings():
    assert without_numbering("7.2. What is a source package?") == "What is a source package?"
    assert without_numbering("Chapter 1. Definitions and overview") == "Definitions and overview"
    assert without_numbering("第 1 章 定义和概览") == "定义和概览"
    assert without_numbering("I am still confused") == "I am still confused"


def test_one_head_per_section_on_its_first_chunk():
    chunks = [(1, 10, "A > 1. B"), (2, 10, "A > 1. B"), (3, 10, "A > 2. C"), (4, 11, "A > 1. B"), (5, 11, "")]
    heads = section_heads(chunks)
    assert [(h.chunk_id, h.bm25_text, h.dense_text) for h in heads] == [
        (1, "A B", "B"), (3, "A C", "C"), (4, "A B", "B")]


def test_a_question_worded_like_the_heading_finds_the_section_whose_body_shares_no_word(kb, ingest):
    # given: a section whose body never says "reset", "router" or "password" — only its heading does
    for name, data in DOCS.items():
        ingest(kb, name, data)
    # when
    result = search(kb, "reset router password", 3)
    # then: both retrievers rank that section first, through its heading row
    for hits in (result.bm25, result.dense, result.hybrid):
        assert hits[0].heading_path.endswith("How do I reset the router password?")
        assert "ten seconds" in hits[0].text


def test_heading_rows_follow_their_chunk_so_appending_a_document_keeps_the_prefix(kb, ingest):
    # given
    ingest(kb, "router.md", DOCS["router.md"])
    first = active_index(kb.pk).rows
    # when
    ingest(kb, "shipping.md", DOCS["shipping.md"])
    second = active_index(kb.pk).rows
    # then: each heading row sits right after the chunk it stands for, and the old rows are a prefix
    kinds, refs = second.kinds.tolist(), second.refs.tolist()
    for position, kind in enumerate(kinds):
        if kind == ROW_HEADING:
            assert kinds[position - 1] == ROW_CHUNK and refs[position - 1] == refs[position]
    assert kinds.count(ROW_HEADING) == 3  # two sections in router.md, one in shipping.md
    assert kinds[:len(first.kinds)] == first.kinds.tolist() and refs[:len(first.refs)] == first.refs.tolist()
