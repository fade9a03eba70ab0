"""Kefu's own replies, and recognising a generated answer that only says it does not know."""

from chat.pipeline.replies import says_dont_know


def test_answers_that_only_say_they_do_not_know_are_recognised():
    for text in ("You do not know.", "I don't know the answer.", "I'm sorry, I cannot answer that.",
                 "抱歉，我不知道。", "无法回答这个问题"):
        assert says_dont_know(text), text
    for text in ("You need a drilling permit [1].", "I know the answer: ten weeks.", "Do not know-how needed."):
        assert not says_dont_know(text), text
