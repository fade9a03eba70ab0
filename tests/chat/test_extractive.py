"""Extractive answers: the best sentences of the top passages, cited, or nothing when none fits."""

from chat.pipeline.extractive import extractive_answer, has_support, sentences_of
from chat.pipeline.passages import Passage


def passage(n, text):
    return Passage(n=n, text=text, document_id=n, document_title=f"Doc {n}", page=None, section="",
                   chunk_id=n, faq_entry_id=None, relevance=0.5)


def test_sentences_are_split_in_english_and_chinese():
    assert sentences_of("First one here. Second one here!\nThird line is here") == [
        "First one here.", "Second one here!", "Third line is here"]
    assert sentences_of("热泵需要钻井许可证。钻井通常需要两天时间完成。") == ["热泵需要钻井许可证。", "钻井通常需要两天时间完成。"]


def test_the_best_matching_sentences_are_returned_in_document_order_with_their_citations(embedder):
    from kb.embedding import embed_query

    passages = [
        passage(1, "A tiled roof lasts about 50 years. We inspect every roof for moisture damage."),
        passage(2, "A ground source heat pump needs a drilling permit from the municipality. "
                   "Drilling usually takes two days. Our office is painted blue."),
    ]
    extract = extractive_answer(question_vector=embed_query("Do I need a permit to drill for a heat pump?"),
                                passages=passages)
    assert extract is not None
    assert extract.text.startswith("A ground source heat pump needs a drilling permit from the municipality. [2]")
    assert "blue" not in extract.text
    assert [c.n for c in extract.citations] == [2] or [c.n for c in extract.citations] == [1, 2]


def test_nothing_is_extracted_when_no_sentence_is_close(embedder):
    from kb.embedding import embed_query

    passages = [passage(1, "A tiled roof lasts about 50 years. Metal roofs need repainting.")]
    assert extractive_answer(question_vector=embed_query("Who won the chess world championship in 1972?"),
                             passages=passages) is None


def test_generation_is_supported_only_by_a_sentence_about_the_question(embedder):
    # given passages about roofs and heat pumps
    from kb.embedding import embed_query

    passages = [passage(1, "A tiled roof lasts about 50 years. Metal roofs need repainting."),
                passage(2, "A ground source heat pump needs a drilling permit from the municipality.")]
    # then a question about the permit is supported, one about a chess championship is not
    assert has_support(question_vector=embed_query("Do I need a permit to drill for a heat pump?"), passages=passages)
    assert not has_support(question_vector=embed_query("Who won the chess world championship in 1972?"),
                           passages=passages)

