"""Small talk and task requests are recognised without a model, in English and Chinese."""

import pytest

from chat.pipeline.smalltalk import is_task_request, smalltalk_kind


@pytest.mark.parametrize(("text", "kind"), [
    ("Hello!", "greeting"), ("hi there", "greeting"), ("Good morning :)", "greeting"), ("你好", "greeting"),
    ("您好！", "greeting"), ("Thanks a lot!", "thanks"), ("thank you for your help", "thanks"), ("谢谢", "thanks"),
    ("ok", "acknowledge"), ("Got it.", "acknowledge"), ("好的", "acknowledge"), ("Bye!", "goodbye"),
    ("have a nice day", "goodbye"), ("再见", "goodbye"), ("Who are you?", "identity"),
    ("Are you a robot?", "identity"), ("你是谁", "identity"),
    ("Hej!", "greeting"), ("hola", "greeting"), ("Bonjour", "greeting"), ("Is anyone there?", "greeting"),
    ("有人吗", "greeting"), ("Can you help me?", "help"), ("hi there, could you help me out?", "help"),
    ("I need some help please", "help"), ("help!", "help"), ("I have a question", "help"),
    ("Can I ask something?", "help"), ("能帮我一下吗？", "help"), ("我有个问题", "help"),
])
def test_small_talk_is_recognised(text, kind):
    assert smalltalk_kind(text) == kind


@pytest.mark.parametrize("text", [
    "What are your opening hours?", "Hi, can I get a permit for a shed?", "Thanks, and how long does it take?",
    "Who are your builders?", "你好，热泵需要许可证吗？", "Is a permit needed to build a veranda?",
    "Are you open on Saturday?", "Can you help me with the ROT deduction?", "I need help with my roof",
    "I have a question about my invoice", "帮我查一下订单",
])
def test_a_question_with_small_talk_around_it_is_a_question(text):
    assert smalltalk_kind(text) is None


@pytest.mark.parametrize("text", [
    "Translate 'good morning' into Japanese.", "Can you translate this to French?", "Write me a poem about roofs",
    "tell me a joke", "a haiku about snow please", "Write a Python script that renames files",
    "把这句话翻译成日语", "给我写一首诗", "讲个笑话",
    "Can you write me a cover letter for a carpenter job application?", "draft my CV please",
    "Write a wedding speech for my brother", "帮我写一封求职信",
])
def test_tasks_for_a_general_assistant_are_recognised(text):
    assert is_task_request(text)


@pytest.mark.parametrize("text", [
    "How do I write a complaint to my builder?", "Is the contract available in English?",
    "What code does the building regulation use for stairs?", "Can you tell me about the ROT deduction?",
    "如何写投诉信给施工方？", "What should I write in the contract about the speech of the payment plan?",
    "Do I need to write a CV-style list of previous jobs when I register as a contractor?",
])
def test_support_questions_that_mention_writing_or_code_are_not_tasks(text):
    assert not is_task_request(text)
