"""The output gate's checks on real examples, and the stream gate against the finished-answer verdict."""

from __future__ import annotations

import random

import pytest

from chat.pipeline import output_gate
from chat.pipeline.output_gate import (
    StreamGate,
    content_check,
    gate_verdict,
    release_point,
    repetition_check,
    script_check,
)

EN_QUESTION = "Do I need a permit before drilling for a ground source heat pump?"
ZH_QUESTION = "安装地源热泵需要钻井许可证吗？"
HOLD = 40

GOOD_ANSWERS = [
    (EN_QUESTION, "Yes. A ground source heat pump needs a drilling permit from the municipality before work "
                  "starts [1]. Drilling usually takes two days [1]."),
    (ZH_QUESTION, "需要。开工前必须向市政府申请钻井许可证[1]，钻井通常需要两天[1]。"),
    # product names, commands and code inside a Chinese answer
    (ZH_QUESTION, "需要许可证。请在 Kefu Portal 中提交申请，或运行 `kefu-cli permit apply --type heatpump`，"
                  "iPhone 和 Android 应用也支持[1]。"),
    ("How do I install the client?", "Run this in a terminal [1]:\n```\npip install kefu-client\n}\n}\n}\n```\n"
                                     "Then restart the KefuServer 3000 service."),
    # a list whose lines share most of their words is not a loop
    ("When are you open?", "- Monday: 8:00 to 17:00\n- Tuesday: 8:00 to 17:00\n- Wednesday: 8:00 to 17:00\n"
                           "- Thursday: 8:00 to 17:00\n- Friday: 8:00 to 17:00\n- Saturday: 10:00 to 14:00\n"
                           "- Sunday: closed"),
    ("Hi!", "Hello! How can I help you today?"),
    ("你好", "您好！请问有什么可以帮您？"),
    ("What does it cost?", "| Size | Price |\n|---|---|\n| S | 0 |\n| M | 0 |\n| L | 0 |\n| XL | 0 |"),
    ("How deep is the borehole?", "150 to 200 metres [1]."),
    ("Which word means 早上好?", "早上好 means good morning."),
]
BAD_ANSWERS = [
    # the examples: garbage kana for an English request, English for a Chinese question
    ("Translate 'good morning' into Japanese", "ノノノノン ーースーノー ンン ノースノース ノーノン ースース", "script"),
    (EN_QUESTION, "おはようございます、今日はいい天気ですね。ありがとうございました。", "script"),
    (EN_QUESTION, "Да, вам нужно разрешение муниципалитета на бурение скважины.", "script"),
    (ZH_QUESTION, "Yes, you need a drilling permit from the municipality [1].", "script"),
    ("你好", "Hello! I am a small talk assistant, how can I help you?", "script"),
    (EN_QUESTION, "X. X. X. X.", "repetition"),
    (EN_QUESTION, "You need a drilling permit. [1] You need a drilling permit. [2]", "repetition"),
    (EN_QUESTION, "the the the the permit", "repetition"),
    (EN_QUESTION, "We can help you we can help you we can help you with that", "repetition"),
    (ZH_QUESTION, "好的好的好的好的", "repetition"),
    (EN_QUESTION, "Aaaaaaaaaaaah, yes.", "repetition"),
    (EN_QUESTION, "Yes!!!!!!!!!!!!!!!!!!!!", "repetition"),
    (EN_QUESTION, "[1] [2]", "empty"),
    (EN_QUESTION, "", "empty"),
    (EN_QUESTION, "   \n ", "empty"),
    (EN_QUESTION, "**  ** <br> [3] ...", "empty"),
]


@pytest.mark.parametrize(("question", "answer"), GOOD_ANSWERS)
def test_good_answers_in_either_language_pass(question, answer):
    assert gate_verdict(answer=answer, question=question, hold_chars=HOLD) == output_gate.PASS


@pytest.mark.parametrize(("question", "answer", "check"), BAD_ANSWERS)
def test_bad_answers_fail_the_check_that_describes_them(question, answer, check):
    verdict = gate_verdict(answer=answer, question=question, hold_chars=HOLD)
    assert (verdict.passed, verdict.check) == (False, check) and verdict.detail


def test_script_check_counts_han_per_character_and_latin_per_word():
    # given a Chinese answer with as many Latin letters as Han characters, it is still Chinese
    assert script_check("请运行 kefuclient 即可", question="怎么安装？").passed
    # while an English question answered mostly in Chinese is not English
    verdict = script_check("您需要向市政府申请许可证 permit", question=EN_QUESTION)
    assert not verdict.passed and "latin" in verdict.detail
    # a question without letters, or an answer of a word or two, says nothing about the language
    assert script_check("ありがとう", question="???").passed
    assert script_check("OK [1]", question=ZH_QUESTION).passed
    # a Japanese question may be answered in kana and Han; a Chinese one not in kana
    assert script_check("はい、許可が必要です。", question="許可は必要ですか？").passed
    assert not script_check("はい、許可が必要です。お問い合わせください。", question=ZH_QUESTION).passed


def test_repetition_mid_stream_judges_only_what_more_text_cannot_undo():
    # an unfinished second sentence that matches the first may still become a different one
    assert repetition_check("You need a permit. You need a permit", complete=False).passed
    assert not repetition_check("You need a permit. You need a permit. And", complete=False).passed
    # a token loop whose last word may still be growing is judged without it
    assert repetition_check("help help help hel", complete=False).passed
    assert not repetition_check("help help help help help", complete=False).passed


def test_content_check_keeps_numbers_and_words_and_drops_marks_and_tags():
    assert content_check("42 [1]").passed
    assert content_check("**Yes**").passed
    assert content_check("👍").passed
    assert not content_check("<p>[1][2]</p> — !").passed


def test_release_point_counts_cjk_double_and_skips_leading_space():
    assert release_point("  " + "a" * 39, 40) is None
    assert release_point("  " + "a" * 40, 40) == 42
    assert release_point("需" * 20 + "要", 40) == 20
    assert release_point("short", 40) is None
    assert release_point("[1] short", 0) == 0  # no hold


def test_without_a_hold_text_flows_at_once_and_only_the_finished_text_is_judged():
    gate = StreamGate(question=EN_QUESTION, hold_chars=0)
    assert gate.feed("[") == "[" and gate.feed("1] Yes") == "1] Yes"
    assert gate_verdict(answer="[1] Yes, you need a permit.", question=EN_QUESTION, hold_chars=0).passed
    assert gate_verdict(answer="[1] [2]", question=EN_QUESTION, hold_chars=0).check == "empty"


def pieces_of(text: str, rng: random.Random) -> list[str]:
    """``text`` cut at random places into pieces of 1–6 characters, like a tokenizer's output."""
    cuts, i = [], 0
    while i < len(text):
        step = rng.randint(1, 6)
        cuts.append(text[i:i + step])
        i += step
    return cuts


def streamed(question: str, pieces: list[str]) -> tuple[list[str], StreamGate]:
    gate = StreamGate(question=question, hold_chars=HOLD)
    out = [gate.feed(piece) for piece in pieces]
    out.append(gate.flush())
    return out, gate


@pytest.mark.parametrize("seed", range(5))
def test_the_stream_shows_a_passing_answer_whole_and_nothing_of_a_rejected_head(seed):
    rng = random.Random(seed)
    for question, answer in GOOD_ANSWERS:
        out, gate = streamed(question, pieces_of(answer, rng))
        # then a good answer streams unchanged, once the head passed
        assert "".join(out) == answer, answer
    for question, answer, _check in BAD_ANSWERS:
        out, gate = streamed(question, pieces_of(answer, rng))
        shown = "".join(out)
        verdict = gate_verdict(answer=answer, question=question, hold_chars=HOLD)
        # then a rejected answer never shows its held-back head (its first HOLD characters, or all of a short one)
        assert not verdict.passed
        point = release_point(answer, HOLD)
        head = output_gate.text_checks(answer if point is None else answer[:point], question=question,
                                       complete=point is None)
        if not head.passed:
            assert shown == "" and gate.state == output_gate.CLOSED, (answer, shown)


def test_a_loop_after_a_good_head_stops_the_stream_and_fails_the_answer():
    head = "Yes, a ground source heat pump needs a drilling permit [1]. "
    answer = head + "Please call us. " * 6 + "Thanks."
    out, gate = streamed(EN_QUESTION, pieces_of(answer, random.Random(7)))
    shown = "".join(out)
    # the head went out, the loop was cut off before its end, and the finished answer fails the same check
    assert shown.startswith(head[:HOLD]) and len(shown) < len(answer)
    assert gate.state == output_gate.CLOSED and gate.verdict.check == "repetition"
    assert gate_verdict(answer=answer, question=EN_QUESTION, hold_chars=HOLD).check == "repetition"


def test_random_splits_agree_with_the_finished_verdict():
    # the stream shows everything exactly when nothing it could judge failed, and never passes what
    # the finished verdict rejects on its head: checked over random cuts of every example
    rng = random.Random(13)
    examples = [(q, a) for q, a in GOOD_ANSWERS] + [(q, a) for q, a, _ in BAD_ANSWERS]
    for _ in range(20):
        for question, answer in examples:
            out, gate = streamed(question, pieces_of(answer, rng))
            verdict = gate_verdict(answer=answer, question=question, hold_chars=HOLD)
            if verdict.passed:
                assert "".join(out) == answer
            if gate.state == output_gate.CLOSED:
                assert not verdict.passed and verdict.check == gate.verdict.check


VOCABULARY = ("permit drilling municipality borehole heat pump roof tiles warranty repaint inspect moisture quote "
              "office weekday holiday contract deposit invoice delivery install replace insulation window facade").split()


def varied_text(chars: int, rng: random.Random) -> str:
    """Sentences of random words: long, and free of repetition a reader would notice."""
    sentences = []
    while sum(map(len, sentences)) < chars:
        words = [rng.choice(VOCABULARY) for _ in range(rng.randint(8, 14))]
        sentences.append(" ".join(words).capitalize() + f" [{rng.randint(1, 5)}].")
    return " ".join(sentences)


def test_a_long_answer_is_rechecked_over_its_recent_sentences_and_a_late_loop_still_stops_it():
    rng = random.Random(5)
    varied = varied_text(3000, rng)
    # a long good answer streams whole
    out, gate = streamed(EN_QUESTION, pieces_of(varied, rng))
    assert "".join(out) == varied and gate.state == output_gate.OPEN
    # the window a mid-stream check reads starts on a sentence of the whole text
    recent = output_gate.recent_sentences(varied)
    assert len(recent) <= output_gate.RECHECK_CHARS and recent[0].isupper() and varied.endswith(recent)
    # a loop that starts after 3000 good characters is still cut off before its end
    looping = varied + " Please call our office today." * 6 + " Bye."
    out, gate = streamed(EN_QUESTION, pieces_of(looping, rng))
    assert len("".join(out)) < len(looping) and gate.verdict.check == "repetition"
    assert gate_verdict(answer=looping, question=EN_QUESTION, hold_chars=HOLD).check == "repetition"
