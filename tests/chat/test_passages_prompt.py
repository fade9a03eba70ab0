"""Prompt building and the mapping of [n] marks back to document, page/section and snippet."""

from chat.pipeline.history import Turn
from chat.pipeline.passages import Passage, citations_for, cited_numbers, hit_relevance, passage_of
from chat.pipeline.prompt import DEFAULT_SYSTEM_PROMPT, answer_messages, chitchat_messages, system_prompt_for
from kb.retrieval.fusion import Ranked
from kb.search import Hit


def passage(n, title="Manual", page=3, section="Heat pumps", text="Drilling needs a permit."):
    return Passage(n=n, text=text, document_id=10 + n, document_title=title, page=page, section=section,
                   chunk_id=100 + n, faq_entry_id=None, relevance=0.6)


def test_passages_are_numbered_with_their_sources_and_the_question_last():
    messages = answer_messages(question="Do I need a permit?", passages=[passage(1), passage(2, page=None)],
                               turns=[Turn("user", "hi"), Turn("assistant", "hello")], system_prompt="SYS")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "SYS"
    body = messages[-1]["content"]
    assert "[1] (Manual · p. 3 · Heat pumps)" in body and "[2] (Manual · Heat pumps)" in body
    assert body.index("[2]") < body.index("Question: Do I need a permit?")
    assert "passage number in brackets, like [1]" in body
    # (saying it does not know is the system prompt's instruction: repeated next to the question, the bundled
    # small model said "You do not know" over the right passages — BENCHMARKS.md, session 3)
    from chat.pipeline.prompt import DEFAULT_SYSTEM_PROMPT

    assert "cite it as [n]" in DEFAULT_SYSTEM_PROMPT and "do not know" in DEFAULT_SYSTEM_PROMPT


def test_the_system_prompt_is_the_bases_own_or_the_default():
    class Profile:
        system_prompt = "  You answer for Acme.  "
    assert system_prompt_for(Profile()) == "You answer for Acme."
    Profile.system_prompt = ""
    assert system_prompt_for(Profile()) == DEFAULT_SYSTEM_PROMPT
    assert "[n]" in DEFAULT_SYSTEM_PROMPT and "do not know" in DEFAULT_SYSTEM_PROMPT


def test_chitchat_has_no_passages():
    messages = chitchat_messages(question="hello!", turns=[])
    assert "Passages" not in " ".join(m["content"] for m in messages)
    assert messages[-1] == {"role": "user", "content": "hello!"}


def test_citation_marks_map_to_sources_in_order_of_first_use():
    answer = "You need a permit [2]. It takes two days [1, 2]. See also [7]."
    assert cited_numbers(answer) == [2, 1, 7]
    cited = citations_for(answer, [passage(1, title="A"), passage(2, title="B", text="x " * 300)])
    assert [(c.n, c.document_title, c.page, c.section) for c in cited] == [(2, "B", 3, "Heat pumps"),
                                                                           (1, "A", 3, "Heat pumps")]
    assert cited[0].snippet.endswith("…") and len(cited[0].snippet) <= 240


def test_relevance_is_the_dense_cosine_or_faq_similarity_never_the_fused_score():
    dense_hit = Hit(chunk_id=1, document_id=1, text="t", score=0.03, document_title="D", page=None,
                    heading_path="", found_by={"dense": Ranked(1, 0.61), "bm25": Ranked(2, 7.5)})
    bm25_only = Hit(chunk_id=2, document_id=1, text="t", score=0.02, document_title="D", page=None,
                    heading_path="", found_by={"bm25": Ranked(1, 9.0)})
    faq = Hit(chunk_id=None, document_id=None, text="q\na", score=0.02, document_title="FAQ", page=None,
              heading_path="", faq_entry_id=5, faq_question="q", faq_answer="a", similarity=0.9)
    assert hit_relevance(dense_hit) == 0.61 and hit_relevance(bm25_only) == 0.0 and hit_relevance(faq) == 0.9
    assert passage_of(faq, 1).text == "q\na" and passage_of(faq, 1).faq_entry_id == 5
