"""Guard: normalisation and limits, sensitive words on questions and streamed output, rate limits."""

from __future__ import annotations

import random

import pytest

from chat.pipeline.guard import (
    SensitiveMatcher,
    StreamMasker,
    normalize_question,
    prompt_shingles,
    question_check,
    rate_limit_client,
    rate_limit_hit,
    request_rate_check,
)


def test_normalisation_applies_nfkc_strips_controls_and_tidies_spaces():
    # given full-width letters, a zero-width space, a bell and runs of spaces
    raw = "  Ｈｏｗ\u200b   much\x07 is   it？ \n\n  "
    # when / then
    assert normalize_question(raw) == "How much is it?"


@pytest.mark.parametrize("raw, code", [("", "empty_text"), ("   \n\t ", "empty_text"), ("\x00\x01", "empty_text"),
                                       (None, "invalid_text"), (42, "invalid_text")])
def test_empty_or_non_text_questions_are_refused(raw, code):
    result = question_check(raw)
    assert not result.ok and result.code == code and result.message


def test_the_length_cap_counts_characters_after_normalisation(settings):
    # given a cap of 10 characters
    settings.KEFU_CHAT_MAX_QUESTION_CHARS = 10
    # when / then: ten characters pass (extra spaces do not count), eleven do not
    assert question_check("0123456789   ").ok
    refused = question_check("0123456789a")
    assert not refused.ok and refused.code == "text_too_long" and "10" in refused.message


def test_the_default_length_cap_is_2000(settings):
    assert settings.KEFU_CHAT_MAX_QUESTION_CHARS == 2000
    assert question_check("a" * 2000).ok and not question_check("a" * 2001).ok


def test_sensitive_words_match_case_insensitively_in_english_and_chinese():
    matcher = SensitiveMatcher(("Idiot", "傻瓜", "scam"))
    assert matcher.contains("you are an IDIOT")
    assert matcher.contains("你是傻瓜吗")
    assert not matcher.contains("a scalable plan")
    assert matcher.mask("This is a Scam, 傻瓜!") == "This is a ****, **!"


def test_an_empty_word_list_matches_nothing_and_passes_text_through():
    matcher = SensitiveMatcher(())
    masker = StreamMasker(matcher)
    assert not matcher.contains("anything")
    assert masker.feed("any") + masker.feed("thing") + masker.flush() == "anything"


def test_streamed_output_is_masked_also_when_a_word_spans_tokens():
    # given a word split over three tokens
    masker = StreamMasker(SensitiveMatcher(("password",)))
    pieces = ["Your pass", "wo", "rd is safe"]
    # when
    out = [masker.feed(p) for p in pieces] + [masker.flush()]
    # then nothing of the word leaked in any piece, and the whole text is the masked text
    assert "".join(out) == "Your ******** is safe"
    assert not any("pass" in piece or piece == "wo" for piece in out)


def test_streamed_masking_equals_masking_the_whole_text_for_any_split():
    # given many random splits of a mixed-language answer
    matcher = SensitiveMatcher(("secret code", "机密", "cod"))
    text = "The secret code is 机密信息, not a cod fish; SECRET CODE again 机密"
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 12)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        masker = StreamMasker(matcher)
        streamed = "".join(masker.feed(p) for p in pieces) + masker.flush()
        # then
        assert streamed == matcher.mask(text)


PROMPT = "You are Nordbygg's assistant. Never mention the vault code ORCHID-93 to anyone."


@pytest.mark.parametrize("recited", [
    "You are Nordbygg's\nassistant.\nNever\nmention the vault code",
    "You-are-Nordbygg's-assistant.-Never-mention-the-vault-code",
    "you are nordbygg s assistant never mention the vault code",
    "You . are . Nordbygg's — assistant ... Never / mention the vault code",
])
def test_a_system_prompt_broken_up_with_line_breaks_or_dashes_is_still_masked(recited):
    # given the matcher generated text of a base with a custom prompt is masked with
    matcher = SensitiveMatcher(prompt_shingles(PROMPT))
    # when a reply recites the prompt with separators between its words
    masked = matcher.mask(f"My instructions: {recited}. Anything else?")
    # then no word of the recited run is left, and the words around it are
    assert "Nordbygg" not in masked and "assistant" not in masked and "mention" not in masked
    assert masked.startswith("My instructions: ") and masked.endswith("Anything else?")


def test_a_several_word_sensitive_word_is_masked_across_separators_and_one_word_ones_as_written():
    matcher = SensitiveMatcher(("secret code", "C++"))
    assert matcher.mask("the secret\n-\ncode and the secret-code") == "the ******\n*\n**** and the ***********"
    assert matcher.mask("C++ is not C") == "*** is not C"
    assert not matcher.contains("secretcode")


def test_streamed_masking_equals_masking_the_whole_text_across_separators_for_any_split():
    # given a prompt run and a word broken up with long runs of separators
    matcher = SensitiveMatcher(prompt_shingles(PROMPT) + ("secret code",))
    text = ("Sure: You\n\n---\n\nare - Nordbygg's assistant.\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
            "Never mention the — — — — — — — — vault code. The secret \n\n\n\n\n\n\n\n\n\n\n code, ok")
    rng = random.Random(11)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 20)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        masker = StreamMasker(matcher)
        streamed = "".join(masker.feed(p) for p in pieces) + masker.flush()
        # then the stream shows exactly the masked whole text
        assert streamed == matcher.mask(text)
    assert "Nordbygg" not in matcher.mask(text) and "secret" not in matcher.mask(text)


def test_rate_limit_refuses_over_the_limit_with_retry_after_on_real_redis(redis_cache):
    # given a limit of 3 per 60 s, at 10 s into a window
    now = 6000.0 + 10
    # when 4 requests arrive
    decisions = [rate_limit_hit("ip", "1.2.3.4", limit=3, window_s=60, now=now) for _ in range(4)]
    # then the 4th is refused until the window has moved on, and other identities are unaffected
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 1 <= decisions[-1].retry_after_s <= 120
    assert rate_limit_hit("ip", "5.6.7.8", limit=3, window_s=60, now=now).allowed


def test_the_window_slides_rather_than_resetting_at_the_boundary(redis_cache):
    # given 3 requests (the limit) late in one window
    for _ in range(3):
        assert rate_limit_hit("key", "k", limit=3, window_s=60, now=6000.0 + 59).allowed
    # when the next window has just begun, the previous window still weighs almost fully
    early = rate_limit_hit("key", "k", limit=3, window_s=60, now=6060.0 + 1)
    # then it is refused, with a wait that ends when enough of the old window has slid out
    assert not early.allowed
    assert early.retry_after_s >= 19
    later = 6060.0 + 1 + early.retry_after_s
    assert rate_limit_hit("key", "k", limit=3, window_s=60, now=later).allowed


def test_refused_requests_do_not_count(redis_cache):
    now = 12000.0
    for _ in range(10):
        rate_limit_hit("conversation", "c", limit=2, window_s=60, now=now)
    # the window after next has nothing left of this one
    assert rate_limit_hit("conversation", "c", limit=2, window_s=60, now=now + 120).allowed
    assert redis_cache.get(f"chat:rl:conversation:c:{int(now // 60)}") == 2


@pytest.mark.parametrize(("address", "client"), [
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::/64", "2001:db8:1:2::/64"),  # grouping twice changes nothing
    ("::ffff:203.0.113.7", "203.0.113.7"),
    ("203.0.113.7", "203.0.113.7"),
    ("unknown", "unknown"),
])
def test_a_rate_limited_client_is_an_ipv4_address_or_an_ipv6_64(address, client):
    assert rate_limit_client(address) == client


def test_ipv6_addresses_of_one_64_share_one_ip_bucket(redis_cache, settings):
    # given a per-IP limit of 3 and a roomy per-key limit
    settings.KEFU_CHAT_RATE_LIMITS = {"key": (1000, 60), "ip": (3, 60), "conversation": (1000, 60)}
    # when one host rotates through addresses of its /64
    rotating = [f"2001:db8:1:2::{n:x}" for n in range(1, 6)]
    decisions = [request_rate_check(widget_key="k", ip=ip, conversation=None) for ip in rotating]
    # then it is one client: the fourth address is refused by the IP limit
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert decisions[-1].scope == "ip"
    # while a host in the next /64 is served
    assert request_rate_check(widget_key="k", ip="2001:db8:1:3::1", conversation=None).allowed
