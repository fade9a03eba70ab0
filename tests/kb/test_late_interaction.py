"""Late interaction: the head of the fused list re-read word piece by word piece against the question."""

import json

import numpy as np
import pytest

from kb import embedding
from kb.retrieval import late_interaction
from kb.retrieval.late_interaction import TokenCache, closeness, reread
from kb.retrieval.search import Hit

COST = ("How much does a roof renovation cost?",
        "A new roof on a villa costs SEK 150,000-300,000 depending on the material.")
DURATION = ("How long does a roof renovation take?",
            "Replacing a villa's roof takes one to three weeks, longer when the weather is bad.")
PERMIT = ("Do I need a permit to replace my roof?",
          "Replacing the roofing with the same look needs no building permit.")


def faq_hit(pair: tuple[str, str], score: float, entry_id: int) -> Hit:
    question, answer = pair
    return Hit(chunk_id=None, document_id=None, text=f"{question}\n{answer}", score=score, document_title="FAQ",
               page=None, heading_path="", faq_entry_id=entry_id, faq_question=question, faq_answer=answer)


def test_closeness_is_each_question_pieces_best_cosine_averaged():
    # given two question pieces and three passage pieces (unit rows)
    question = np.array([[1.0, 0.0], [0.0, 1.0]])
    passage = np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]])
    # then the first matches 1.0, the second 0.8 at best: their mean
    assert closeness(question, passage) == pytest.approx(0.9)
    # and a text without pieces is close to nothing
    assert closeness(question, passage[:0]) == 0.0


def test_a_sibling_that_asks_what_the_customer_asks_is_read_first(embedder):
    # given the fused list's sibling entries near-tied, the cost question first
    hits = [faq_hit(COST, 1.0, 1), faq_hit(DURATION, 0.98, 2), faq_hit(PERMIT, 0.9, 3)]
    # when the customer asks how many weeks the job takes
    ranked = reread("how many weeks will the roofers be working on our house?", hits, model=None)
    # then the duration entry leads, its fused score untouched
    assert [hit.faq_entry_id for hit in ranked] == [2, 1, 3]
    assert ranked[0].score == 0.98


def test_a_clear_fused_lead_is_kept_against_a_slightly_closer_wording(embedder):
    # given the answer far ahead of a sibling in fused score, and the same question
    hits = [faq_hit(PERMIT, 1.0, 3), faq_hit(COST, 0.2, 1), faq_hit(DURATION, 0.1, 2)]
    # when no weight is given to closeness, or the list is shorter than two
    assert reread("how many weeks does the roof job take?", hits, model=None, weight=0) == hits
    assert reread("how many weeks does the roof job take?", hits[:1], model=None) == hits[:1]
    # then the order is the fused one; hits below the re-read depth keep their place
    deeper = [faq_hit(COST, 1.0 - i / 10, 10 + i) for i in range(4)] + [faq_hit(DURATION, 0.5, 2)]
    ranked = reread("how many weeks does the roof job take?", deeper, model=None, depth=4)
    assert ranked[-1].faq_entry_id == 2


def test_a_chinese_question_keeps_the_fused_order_on_an_english_only_model(embedder, monkeypatch):
    # given a list the English model would re-order for an English question
    hits = [faq_hit(COST, 1.0, 1), faq_hit(DURATION, 0.98, 2)]
    assert [h.faq_entry_id for h in reread("how many weeks does it take?", hits, model=None)] == [2, 1]
    # when the question is Chinese, the model English-only: nothing is embedded, the order stays
    monkeypatch.setattr(embedding, "embed_tokens", lambda *a, **k: pytest.fail("embedded a Chinese question"))
    assert reread("屋顶翻新需要几周？how many weeks", hits, model="all-minilm-l6-v2") == hits


def test_a_model_tuned_from_an_english_only_one_is_english_only(settings, tmp_path):
    # given a tuned artifact whose manifest names the bundled MiniLM as parent, and one on another model
    for digest, parent in (("a" * 12, "all-minilm-l6-v2"), ("b" * 12, "bge-small-zh")):
        folder = embedding.tuned_model_dir("shop", digest)
        folder.mkdir(parents=True)
        (folder / embedding.TUNED_MANIFEST).write_text(json.dumps({"parent": parent, "method": "full"}))
    embedding.english_only.cache_clear()
    # then the first is English-only like its parent, the second is not; an unknown tuned name is not either
    assert embedding.english_only("tuned:shop:" + "a" * 12)
    assert not embedding.english_only("tuned:shop:" + "b" * 12)
    assert not embedding.english_only("tuned:gone:" + "c" * 12)
    assert embedding.english_only("all-minilm-l6-v2")
    embedding.english_only.cache_clear()


def test_word_pieces_leave_out_special_tokens_and_punctuation(embedder):
    # when a text is embedded piece by piece
    pieces = embedding.embed_tokens(["Hello, world!", "roof... roof?!"])
    # then only the pieces with letters are kept ("hello", "world"; "roof" twice), unit rows
    assert [len(p) for p in pieces] == [2, 2]
    assert np.allclose(np.linalg.norm(pieces[0], axis=1), 1.0, atol=1e-5)
    # and a piece is read in context: "world" differs between two sentences
    other = embedding.embed_tokens(["Goodbye cruel world"])[0]
    assert float(pieces[0][1] @ other[-1]) < 0.99


def test_passage_pieces_are_computed_once_and_the_cache_keeps_its_budget(embedder, monkeypatch):
    # given an empty cache
    late_interaction._cache.clear()
    calls = []
    real = embedding.embed_tokens
    monkeypatch.setattr(embedding, "embed_tokens", lambda texts, **kw: calls.append(list(texts)) or real(texts, **kw))
    # when the same passages are read twice, one new passage the second time
    late_interaction.passage_tokens(["a roof", "a floor"], model=None)
    late_interaction.passage_tokens(["a floor", "a wall"], model=None)
    # then only the new one is embedded again
    assert calls == [["a roof", "a floor"], ["a wall"]]
    # and a cache over its byte budget drops its least recently used rows first
    cache = TokenCache(budget=2 * 4 * 2)  # two 4-d float16 rows
    for name in ("one", "two", "three"):
        cache.put(("m", name), np.ones((1, 4), dtype=np.float32))
    assert cache.get(("m", "one")) is None and cache.get(("m", "three")) is not None
    assert cache.size == 16


def test_a_follow_up_is_read_by_its_own_words_as_much_as_by_the_topic_it_inherited(embedder, monkeypatch):
    # given a follow-up ("how many weeks will we be without it?") rewritten with the topic of the previous question
    # (a permit to replace the roof), and the permit entry leading the fused list
    hits = [faq_hit(PERMIT, 1.0, 3), faq_hit(DURATION, 0.99, 2), faq_hit(COST, 0.96, 1)]
    rewritten, ask = "how many weeks will we be without it? permit replace roof", "how many weeks will we be without it?"
    read = []
    real = embedding.embed_tokens
    monkeypatch.setattr(embedding, "embed_tokens", lambda texts, **kw: read.append(list(texts)) or real(texts, **kw))
    # when the head is re-read with the follow-up's own words as well
    both = reread(rewritten, hits, model=None, ask=ask)
    # then both readings were broken into pieces at once, and each hit's closeness is their mean
    assert [rewritten, ask] in read
    pieces = [matrix.astype(np.float32) for matrix in real([rewritten, ask], role=embedding.QUERY)]
    passages = late_interaction.passage_tokens([hit.text for hit in hits], model=None)
    scaled = [1.0, 0.75, 0.0]
    expected = sorted(range(3), key=lambda i: -(scaled[i] + late_interaction.WEIGHT * float(np.mean(
        [closeness(piece, passages[i]) for piece in pieces]))))
    assert [hit.faq_entry_id for hit in both] == [hits[i].faq_entry_id for i in expected]
    # and the duration entry, which the ask is about, comes first where the rewrite alone keeps the permit first
    assert both[0].faq_entry_id == 2
    assert reread(rewritten, hits, model=None)[0].faq_entry_id == 3
