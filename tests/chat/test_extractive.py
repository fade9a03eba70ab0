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
    # the heat-pump sentence leads; its source, passage 2, is the extract's first citation, so it reads [1]
    assert extract.text.startswith("A ground source heat pump needs a drilling permit from the municipality. [1]")
    assert "blue" not in extract.text
    assert [(c.n, c.document_title) for c in extract.citations][0] == (1, "Doc 2")
    assert [c.n for c in extract.citations] == list(range(1, len(extract.citations) + 1))


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



def faq_passage(n, question, answer, faq_id=None):
    return Passage(n=n, text=f"{question}\n{answer}", document_id=100 + n, document_title=question, page=None,
                   section="", chunk_id=None, faq_entry_id=faq_id or n, relevance=0.7)


def sentence_count(text, sentence):
    return text.count(sentence)


def test_the_faq_copy_and_the_chunk_copy_of_one_answer_are_extracted_once(embedder):
    # given the same answer retrieved twice: as a FAQ entry and as the chunk of its source document
    from kb.embedding import embed_query

    answer = ("A building permit is valid for five years. Work must start within two years of the decision. "
              "You must apply for a new permit if it lapses.")
    passages = [faq_passage(1, "How long is a building permit valid?", answer), passage(2, answer)]
    # when a paraphrase is answered extractively
    extract = extractive_answer(question_vector=embed_query("For how long does a building permit remain valid?"),
                                passages=passages)
    # then no sentence appears twice, and every sentence carries a citation
    assert extract is not None
    assert sentence_count(extract.text, "A building permit is valid for five years.") == 1
    assert "[2]" not in extract.text and [c.n for c in extract.citations] == [1]


def test_near_duplicate_passages_give_no_repeated_statement(embedder):
    from kb.embedding import embed_query

    passages = [passage(1, "The ROT deduction covers 30 percent of the labour cost. It applies to repairs."),
                passage(2, "The ROT deduction covers 30 per cent of the labour cost! It applies to repairs!")]
    extract = extractive_answer(question_vector=embed_query("How much of the labour cost does the ROT deduction cover?"),
                                passages=passages)
    assert extract is not None and extract.text.count("ROT deduction covers 30") == 1


def test_sentences_are_chosen_for_the_question_not_for_their_place(embedder):
    # given a passage whose answering sentence is its last one
    from kb.embedding import embed_query

    passages = [passage(1, "Our company was founded in 1985 in Zaragoza. We employ forty craftsmen. "
                           "A facade renovation usually takes four to six weeks, depending on the weather.")]
    extract = extractive_answer(question_vector=embed_query("How long does a facade renovation take?"),
                                passages=passages)
    # then the extract opens with it, and the unrelated first sentence is left out
    assert extract is not None and extract.text.startswith("A facade renovation usually takes four to six weeks")
    assert "founded in 1985" not in extract.text


def test_an_extract_is_capped_in_sentences_and_length(embedder):
    from chat.pipeline.extractive import MAX_CHARS, MAX_SENTENCES
    from kb.embedding import embed_query

    body = " ".join(f"Roof type {i} needs an inspection every {i + 2} years by a certified roofer." for i in range(9))
    extract = extractive_answer(question_vector=embed_query("How often does a roof need an inspection?"),
                                passages=[passage(1, body), passage(2, body.replace("Roof", "Slate roof"))])
    assert extract is not None
    marks = extract.text.count("[")
    assert 1 <= marks <= MAX_SENTENCES and len(extract.text) <= MAX_CHARS + MAX_SENTENCES * 5


def test_a_sentence_of_the_better_ranked_passage_wins_a_near_tie(embedder):
    import numpy as np

    from chat.pipeline.extractive import RANK_DECAY, Sentence, pick_sentences

    # given two equally close sentences, the second from a lower-ranked passage
    sentences = [Sentence(1, 0, "Lower ranked sentence.", 0.8, 0.8 * RANK_DECAY), Sentence(0, 0, "Top one.", 0.79, 0.79)]
    vectors = np.eye(2, dtype=np.float32)
    # then the better-ranked passage's sentence comes first
    assert [s.text for s in pick_sentences(sentences, vectors)][0] == "Top one."


def unit(angle_degrees):
    import numpy as np

    angle = np.radians(angle_degrees)
    return np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)


def fixed_embed(table):
    """An embedder that knows each sentence's vector: cosines with the question (angle 0) are set by the test."""
    import numpy as np

    return lambda sentences: np.stack([unit(table[s]) for s in sentences])


def test_the_best_ranked_passage_speaks_first_when_it_has_a_sentence_to_the_point():
    # given: passage 1's sentence is on topic (cos 60° = 0.5), passage 2's closer (cos -40° = 0.77)
    embed = fixed_embed({"Upgrades run with apt.": 60, "Unattended upgrades install updates nightly.": -40,
                         "The office is blue.": 89})
    passages = [passage(1, "Upgrades run with apt. The office is blue."),
                passage(2, "Unattended upgrades install updates nightly.")]
    # when
    extract = extractive_answer(question_vector=unit(0), passages=passages, embed=embed)
    # then the first citation is the best-ranked source; the closer sentence follows, cited to its own
    assert extract.text == "Upgrades run with apt. [1] Unattended upgrades install updates nightly. [2]"


def test_a_best_ranked_passage_with_nothing_to_the_point_is_not_quoted():
    # given: passage 1's only sentence is off topic (cos 80° = 0.17 < MIN_SIMILARITY)
    embed = fixed_embed({"The office is blue today.": 80, "Unattended upgrades install updates nightly.": 40})
    passages = [passage(1, "The office is blue today."), passage(2, "Unattended upgrades install updates nightly.")]
    extract = extractive_answer(question_vector=unit(0), passages=passages, embed=embed)
    # then only passage 2 is quoted, and as the extract's only source it is cited [1]
    assert extract.text == "Unattended upgrades install updates nightly. [1]"
    assert [(c.n, c.document_title) for c in extract.citations] == [(1, "Doc 2")]


def test_the_sentence_holding_the_questions_words_leads_when_the_embedder_cannot_tell_them_apart():
    # given an embedder that reads Chinese no better than chance: both sentences sit at cos 55° (0.57)
    about_cpus = "当前版本对于以下架构有完整的二进制发行版：amd64、arm64。"
    about_manual = "可以安装 debian-reference 软件包获得参考手册。"
    embed = fixed_embed({about_manual: 55, about_cpus: 55.5})
    passages = [passage(1, f"{about_manual}{about_cpus}")]
    # when the question is asked with its words
    extract = extractive_answer(question_vector=unit(0), passages=passages, embed=embed,
                                question="Debian 支持哪些 CPU 架构？")
    # then the sentence about architectures leads (without the words, the cosine alone picks the manual)
    assert extract.text.startswith(about_cpus)
    assert extractive_answer(question_vector=unit(0), passages=passages,
                             embed=embed).text.startswith(about_manual)


def test_the_question_words_never_lift_a_sentence_off_the_topic_over_the_threshold():
    # given the only sentence holds the question's words but is far from it (cos 80° < MIN_SIMILARITY)
    embed = fixed_embed({"Debian supports many CPU architectures in theory.": 80})
    passages = [passage(1, "Debian supports many CPU architectures in theory.")]
    # then nothing is extracted: thresholds read the cosine alone
    assert extractive_answer(question_vector=unit(0), passages=passages, embed=embed,
                             question="Which CPU architectures does Debian support?") is None
