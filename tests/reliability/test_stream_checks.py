"""The load generator's per-stream checks (bench/load_core.stream_problems) catch lost tokens, not attribution."""

from __future__ import annotations

from bench.load_core import Ask, StreamResult, stream_problems


def result(tokens, outcome, answer):
    return StreamResult(ask=Ask(text="q", kind="generated"), final_kind="done",
                        final={"outcome": outcome, "answer": answer},
                        token_ids=[f"1-{i}" for i in range(len(tokens))], token_texts=tokens)


def test_citation_marks_attributed_after_the_stream_are_not_a_problem():
    tokens = ["You need ", "a permit. ", "It takes ", "two days."]
    assert stream_problems(result(tokens, "answered", "You need a permit. [1] It takes two days. [2]")) == []


def test_a_lost_token_is_a_problem():
    tokens = ["You need ", "It takes ", "two days."]
    problems = stream_problems(result(tokens, "answered", "You need a permit. It takes two days."))
    assert problems and "streamed text != done answer" in problems[0]


def test_a_replaced_i_dont_know_is_checked_by_token_ids_only():
    tokens = ["You do ", "not know."]
    assert stream_problems(result(tokens, "refused", "I'm sorry, I don't know the answer to that.")) == []
    repeated = result(tokens, "refused", "I'm sorry, I don't know.")
    repeated.token_ids = ["1-0", "1-0"]
    assert stream_problems(repeated)
