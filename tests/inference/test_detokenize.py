"""TextAssembler: visible text, <think> reasoning and stop sequences, fed token by token."""

from __future__ import annotations

import pytest

from inference.detokenize import TextAssembler


def feed_pieces(assembler: TextAssembler, pieces: list[str]) -> str:
    """Feed cumulative decoded text piece by piece; returns everything emitted, flush included."""
    decoded, shown = "", ""
    for piece in pieces:
        decoded += piece
        shown += assembler.feed(decoded)
        if assembler.stopped:
            break
    return shown + assembler.flush()


def test_plain_text_is_emitted_as_it_comes():
    assembler = TextAssembler()
    assert assembler.feed("Hel") == "Hel"
    assert assembler.feed("Hello") == "lo"
    assert assembler.flush() == ""
    assert assembler.text == "Hello"


def test_incomplete_utf8_is_held_until_whole():
    assembler = TextAssembler()
    assert assembler.feed("caf\ufffd") == ""
    assert assembler.feed("café") == "café"


def test_think_block_goes_to_reasoning_not_to_the_answer():
    # given a reasoning model's output split at awkward places
    assembler = TextAssembler()
    pieces = ["<th", "ink>", "The user", " asks.</th", "ink>", "\n\n", "Paris", " is the capital."]

    # when it is fed token by token
    shown = feed_pieces(assembler, pieces)

    # then the answer excludes the reasoning and the blank line after it
    assert shown == "Paris is the capital."
    assert assembler.reasoning == "The user asks."
    assert assembler.text == "Paris is the capital."


def test_prompt_that_opened_think_starts_in_reasoning():
    assembler = TextAssembler(starts_in_reasoning=True)
    shown = feed_pieces(assembler, ["hmm", "</think>", "Yes."])
    assert (shown, assembler.reasoning) == ("Yes.", "hmm")


def test_text_that_only_looks_like_think_is_shown():
    assembler = TextAssembler()
    assert feed_pieces(assembler, ["<", "b>bold</b>"]) == "<b>bold</b>"


@pytest.mark.parametrize("pieces, expected", [
    (["Hello", " END", " more"], "Hello "),
    (["Hello E", "N", "D"], "Hello "),
    (["Hello E", "NDING?"], "Hello "),
    (["Hello E", "nd"], "Hello End"),
])
def test_stop_sequence_cuts_and_is_never_shown(pieces, expected):
    # given a stop sequence that may arrive split across tokens
    assembler = TextAssembler(stop=("END",))

    # when the text is fed piece by piece
    shown = feed_pieces(assembler, pieces)

    # then nothing from the stop sequence on is shown, and generation is marked stopped when it occurred
    assert shown == expected
    assert assembler.stopped == ("END" in "".join(pieces))


def test_held_back_prefix_of_a_stop_is_released_at_the_end():
    assembler = TextAssembler(stop=("###",))
    assert assembler.feed("Answer #") == "Answer "
    assert assembler.flush() == "#"


@pytest.mark.slow
@pytest.mark.parametrize("text", [
    "Hello, world! The warranty covers parts and labour for two years.",
    "Café ☕, 日本語のテキスト, emojis 🙂🚀 and accents: àéîõü — done.",
    "  spaced   out\n\nnew lines\tand tabs , odd . punctuation ' s",
])
def test_incremental_decoder_gives_the_full_decode_token_by_token(smollm, text):
    from inference.detokenize import IncrementalDecoder

    # given the ids of a text (multi-byte characters split over several byte-level tokens)
    ids = smollm.tokenizer(text)["input_ids"]
    decoder = IncrementalDecoder(smollm.tokenizer)

    # when they are added one at a time
    texts = [decoder.add(token) for token in ids]

    # then after every id the text equals a full decode of the ids so far (up to a character still incomplete)
    for count, partial in enumerate(texts, start=1):
        full = smollm.tokenizer.decode(ids[:count], skip_special_tokens=True)
        assert full.rstrip("\ufffd") == partial or full.endswith("\ufffd") and full.startswith(partial)
    assert texts[-1] == smollm.tokenizer.decode(ids, skip_special_tokens=True)
