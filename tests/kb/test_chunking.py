"""Chunker: sentence boundaries (English, Chinese), token budget, overlap, headings kept."""

from __future__ import annotations

from kb.chunking import chunk_sections, split_sentences
from kb.parsing import Section


def words(texts):
    return [len(t.split()) for t in texts]


def test_split_sentences_english_and_chinese():
    assert split_sentences("One. Two? Three!\n\nFour") == ["One.", "Two?", "Three!", "Four"]
    assert split_sentences("你好。我很好！真的吗？是的") == ["你好。", "我很好！", "真的吗？", "是的"]


def test_chunks_respect_size_and_overlap_and_keep_section_metadata():
    text = " ".join(f"Sentence number {i} is here." for i in range(12))
    drafts = chunk_sections([Section(text, ("A", "B"), 3)], size=20, overlap=6, token_lengths=words)
    assert all(d.token_count <= 20 for d in drafts)
    assert drafts[0].text.endswith("Sentence number 3 is here.")
    assert drafts[1].text.startswith("Sentence number 3 is here.")  # one sentence (5 words) of overlap
    assert {(d.heading_path, d.page) for d in drafts} == {(("A", "B"), 3)}
    assert "Sentence number 11 is here." in drafts[-1].text


def test_chunks_never_cross_sections():
    drafts = chunk_sections([Section("Alpha one.", ("A",)), Section("Beta two.", ("B",))], size=50, overlap=5,
                            token_lengths=words)
    assert [(d.text, d.heading_path) for d in drafts] == [("Alpha one.", ("A",)), ("Beta two.", ("B",))]


def test_token_counts_use_the_embedding_tokenizer(embedder):
    from kb.embedding import token_lengths

    text = "退货政策。您可以在三十天内退货！请保留收据。" * 20
    drafts = chunk_sections([Section(text)], size=40, overlap=10)
    assert len(drafts) > 1
    for draft in drafts:
        assert draft.token_count == token_lengths([draft.text])[0] <= 40
        assert draft.text.endswith(("。", "！"))


def test_overlong_sentence_is_cut_by_tokens(embedder):
    text = "word " * 300
    drafts = chunk_sections([Section(text.strip())], size=100, overlap=0)
    assert len(drafts) == 3 and all(d.token_count <= 100 for d in drafts)
