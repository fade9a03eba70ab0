"""Chunker: sentence boundaries (English, Chinese), token budget, overlap, headings kept."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kb.chunking import chunk_sections, split_sentences
from kb.parsing import Section


def words(texts):
    return [len(t.split()) for t in texts]


def test_split_sentences_english_and_chinese():
    assert split_sentences("One. Two? Three!\n\nFour") == ["One.", "Two?", "Three!", "Four"]
    assert split_sentences("你好。我很好！真的吗？是的") == ["你好。", "我很好！", "真的吗？", "是的"]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    # (found by the property below: the closers after a sentence's end were dropped with the space)
    assert split_sentences('He said "Stop." Then (open daily.) Next') == ['He said "Stop."', "Then (open daily.)",
                                                                           "Next"]
    assert split_sentences("他说：“好。”然后。是的") == ["他说：“好。”", "然后。", "是的"]


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


# --- properties (issue 16: 16): any text, any budget ------------------------------------------------------
WORD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
               min_size=1, max_size=8)
SENTENCE = st.builds(lambda ws, end: " ".join(ws) + end, st.lists(WORD, min_size=1, max_size=30),
                     st.sampled_from([".", "!", "?", "。", "", ";"]))
TEXT = st.builds(lambda ss, seps: "".join(s + sep for s, sep in zip(ss, seps, strict=False)),
                 st.lists(SENTENCE, min_size=1, max_size=15),
                 st.lists(st.sampled_from([" ", "\n", "\n\n", "  \n \n", "\t"]), min_size=15, max_size=15))
SECTIONS = st.lists(st.builds(Section, TEXT, st.tuples(WORD), st.one_of(st.none(), st.integers(1, 999))),
                    min_size=1, max_size=4)
BUDGET = st.integers(1, 40).flatmap(lambda size: st.tuples(st.just(size), st.integers(0, size - 1)))


def split_words(text: str, size: int) -> list[str]:
    parts = text.split()
    return [" ".join(parts[i:i + size]) for i in range(0, len(parts), size)]


def chunked(sections, size, overlap):
    return chunk_sections(sections, size=size, overlap=overlap, token_lengths=words, split_long=split_words)


@settings(max_examples=150, deadline=None)
@given(sections=SECTIONS, budget=BUDGET)
def test_any_text_is_chunked_within_budget_without_losing_a_sentence(sections, budget):
    size, overlap = budget
    # when any sections are chunked with any budget
    drafts = chunked(sections, size, overlap)
    # then every chunk holds text and fits the budget
    assert all(d.text.strip() and 0 < d.token_count <= size for d in drafts)
    # and each sentence of a section is in a chunk made from it — whole, or (longer than the budget) word by word
    for section in sections:
        own = [d.text for d in drafts if (d.heading_path, d.page) == (section.heading_path, section.page)]
        for sentence in split_sentences(section.text):
            if len(sentence.split()) <= size:
                assert any(sentence in text for text in own), sentence
            else:
                assert all(any(word in text for text in own) for word in sentence.split()), sentence


@settings(max_examples=100, deadline=None)
@given(sections=SECTIONS, budget=BUDGET)
def test_chunks_keep_the_section_order_and_metadata(sections, budget):
    size, overlap = budget
    drafts = chunked(sections, size, overlap)
    # then chunks come section by section, each carrying one input section's heading and page
    expected = [(s.heading_path, s.page) for s in sections if s.text.split()]
    seen = [(d.heading_path, d.page) for d in drafts]
    assert [key for i, key in enumerate(seen) if i == 0 or seen[i - 1] != key] == [
        key for i, key in enumerate(expected) if i == 0 or expected[i - 1] != key]
    # and the same input always gives the same chunks
    assert chunked(sections, size, overlap) == drafts


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400))
def test_sentence_splitting_never_loses_a_character_that_is_not_space(text):
    # any string at all: splitting keeps every non-space character, in order
    squeeze = "".join(ch for ch in text if not ch.isspace())
    assert "".join("".join(ch for ch in s if not ch.isspace()) for s in split_sentences(text)) == squeeze
