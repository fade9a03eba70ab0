"""BM25: the sparse implementation scores exactly as rank_bm25.BM25Okapi; analyzer handles en/zh."""

from __future__ import annotations

import numpy as np
from rank_bm25 import BM25Okapi

from kb.retrieval.analyzer import analyze
from kb.retrieval.bm25 import Bm25Params, build_bm25

CORPUS = [
    "The building permit (bygglov) is required for extensions and new houses.",
    "A permit is not required for small sheds under 15 square metres.",
    "Our team helps with the permit application process from start to finish.",
    "Kitchen renovations usually take four to six weeks, permits are rarely needed.",
    "Roof repairs: we replace tiles, gutters and insulation on the roof.",
    "The the the permit permit application.",
    "退货政策：您可以在三十天内退货。",
    "Debian 软件包使用 dpkg 安装，permit 这个词在这里出现。",
    "",
]
QUERIES = ["building permit", "permit permit application roof", "退货 三十天", "dpkg permit 安装", "unknownword",
           "the"]


def test_scores_equal_rank_bm25_get_scores():
    # given the same tokenised corpus
    tokenised = [analyze(text) for text in CORPUS]
    reference = BM25Okapi(tokenised)
    index = build_bm25(tokenised)
    # when / then: every query scores every document identically (negative-idf floor included)
    for query in QUERIES:
        terms = analyze(query)
        np.testing.assert_allclose(index.scores(terms), reference.get_scores(terms), rtol=1e-9, atol=1e-12)


def test_scores_equal_rank_bm25_with_other_parameters_and_a_larger_random_corpus():
    rng = np.random.default_rng(7)
    vocabulary = [f"w{i}" for i in range(300)]
    corpus = [list(rng.choice(vocabulary, size=rng.integers(1, 60), p=zipf(300))) for _ in range(400)]
    reference = BM25Okapi(corpus, k1=1.2, b=0.6, epsilon=0.5)
    index = build_bm25(corpus, Bm25Params(k1=1.2, b=0.6, epsilon=0.5))
    for _ in range(20):
        query = list(rng.choice(vocabulary, size=4))
        np.testing.assert_allclose(index.scores(query), reference.get_scores(query), rtol=1e-9)


def zipf(n):
    weights = 1 / np.arange(1, n + 1)
    return weights / weights.sum()


def test_top_returns_positive_scores_best_first(tmp_path):
    index = build_bm25([analyze(t) for t in CORPUS])
    index.save(tmp_path)
    loaded = type(index).load(tmp_path)
    rows, scores = loaded.top(analyze("roof tiles"), 3)
    assert rows.tolist() == [4] and scores[0] > 0


def test_analyzer_stems_drops_stop_words_and_indexes_chinese_characters_and_bigrams():
    assert analyze("The permits were Required!") == ["permit", "requir"]
    assert analyze("退货政策 Debian") == ["退", "货", "政", "策", "退货", "货政", "政策", "debian"]
    assert analyze("我的包") == ["我", "包", "我的", "的包"]  # a one-character stop word is no term alone


def test_full_width_and_traditional_text_meet_their_usual_forms():
    # given a Simplified, half-width index text and queries typed in full width or Traditional script
    assert analyze("ＤＥＢ　Ｐａｃｋａｇｅｓ") == analyze("deb packages")
    assert analyze("軟體套件開機過程") == analyze("软体套件开机过程")


def test_a_traditional_chinese_question_finds_the_simplified_passage():
    from kb.retrieval.bm25 import build_bm25

    corpus = ["如何使 Debian 系统保持最新？", "我有多台机器，怎样才能只下载一次更新？", "退货政策：三十天内可以退货。"]
    index = build_bm25([analyze(text) for text in corpus])
    rows, _ = index.top(analyze("如何使系統保持最新"), 1)
    assert rows.tolist() == [0]


def test_a_code_written_with_a_space_finds_the_code_written_without_one():
    # given a passage naming fire class "EI60" among others
    corpus = [analyze("What is fire class EI60? A door that keeps a fire out for an hour."),
              analyze("What is the IP rating of an outdoor socket?")] + [analyze(text) for text in CORPUS]
    bm25 = BM25Okapi(corpus)
    # when a customer writes the code with a space
    scores = bm25.get_scores(analyze("What does it mean when EI 60 is written on it?"))
    # then the fire-class passage scores best, and plain words and numbers are not split
    assert scores.argmax() == 0 and scores[0] > 0
    assert analyze("EI60") == ["ei60", "ei", "60"] and analyze("door 2024") == ["door", "2024"]
