"""History: the turns that fit the budget, and follow-ups rewritten into standalone queries."""

from chat.pipeline.history import Turn, approx_tokens, history_window, standalone_question


def test_the_window_keeps_the_latest_turns_within_the_budget_and_starts_with_a_question():
    # given four turns of ~10 tokens each
    turns = [Turn("user", "q1 " * 13), Turn("assistant", "a1 " * 13), Turn("user", "q2 " * 13),
             Turn("assistant", "a2 " * 13)]
    # when the budget fits three turns
    kept = history_window(turns, budget_tokens=3 * approx_tokens(turns[0].text))
    # then the lone oldest answer is dropped too: the window starts with a question
    assert [t.text[:2] for t in kept] == ["q2", "a2"]


def test_chinese_counts_one_token_per_character():
    assert approx_tokens("转人工客服") == 5 + 1


def test_a_follow_up_is_prefixed_with_the_previous_question():
    turns = [Turn("user", "Do I need a permit for a heat pump?"), Turn("assistant", "Yes [1].")]
    rewritten = standalone_question("And how long does it take?", turns)
    assert rewritten.depends_on_history
    assert rewritten.query == "Do I need a permit for a heat pump? And how long does it take?"


def test_a_self_contained_question_is_left_alone():
    turns = [Turn("user", "Do I need a permit for a heat pump?"), Turn("assistant", "Yes [1].")]
    same = standalone_question("What are your opening hours on Saturday?", turns)
    assert same.query == "What are your opening hours on Saturday?" and not same.depends_on_history


def test_chinese_follow_ups_are_recognised():
    turns = [Turn("user", "安装热泵需要许可证吗？"), Turn("assistant", "需要 [1]。")]
    assert standalone_question("那要多久？", turns).depends_on_history
    assert not standalone_question("那要多久？", []).depends_on_history
