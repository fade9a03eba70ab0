"""Misspelled question words corrected to the base's own words (kb.retrieval.spelling, kb.search.spelled)."""

from __future__ import annotations

from kb.retrieval import spelling
from kb.retrieval.spelling import Speller

BASE = ("How thick should the attic insulation be? Builders insulate the attic with 400 mm. It isn't cheap. "
        "The builder must be registered. A builder stopped answering: file a complaint. "
        "Insulation of the roof. Make a budget for the renovation.")


def speller() -> Speller:
    return Speller(spelling.words_of([BASE]))


def test_a_misspelled_word_becomes_the_bases_word_one_edit_away():
    # when
    corrected = speller().correct("how thick shoud attic insulaton be nowadays?")
    # then
    assert corrected.text == "how thick should attic insulation be nowadays?"
    assert corrected.changes == (("shoud", "should"), ("insulaton", "insulation"))
    assert corrected.changed


def test_a_transposition_and_a_dropped_letter_are_one_edit_each():
    # when
    corrected = speller().correct("Our bulder stoped answering, and the buidler still has the deposit")
    # then
    assert corrected.text == "Our builder stopped answering, and the builder still has the deposit"


def test_the_first_letters_case_is_kept():
    assert speller().correct("Insulaton of the roof").text == "Insulation of the roof"


def test_an_english_word_the_base_does_not_hold_is_never_turned_into_one_it_does():
    # given "make" is in the base and "bake" is one edit away, but "bake" is an English word
    # when
    corrected = speller().correct("How do I bake sourdough bread?")
    # then
    assert corrected.text == "How do I bake sourdough bread?" and not corrected.changed


def test_a_word_nothing_in_the_base_is_close_to_stays_as_typed():
    assert speller().correct("Where is Helsingborg?").text == "Where is Helsingborg?"


def test_acronyms_short_words_numbers_and_chinese_are_left_alone():
    # given "ATTC" is an acronym, "bui" is short, 400mm holds digits and 保温层 is Chinese
    text = "Is ATTC ok, bui 400mm, 屋顶保温层多厚?"
    # then
    assert speller().correct(text).text == text


def test_two_edits_are_allowed_only_for_long_words():
    # given "renovaton" (9 letters) is one edit off and "renvaton" two; "buldr" (5 letters) is two off "builder"
    s = speller()
    # then
    assert s.correct("renvaton").text == "renovation"
    assert s.correct("buldr").text == "buldr"


def test_of_several_words_one_edit_away_the_most_frequent_in_the_base_wins():
    # given "bolts" (once) and "boats" (three times) are both one edit from "boets"
    s = Speller(spelling.words_of(["bolts", "boats boats boats"]))
    # then
    assert s.correct("boets").text == "boats"


def test_a_contraction_typed_without_its_apostrophe_is_not_cut_to_a_fragment():
    # given the base says "isn't" (whose "isn" alone is no word of the base)
    corrected = speller().correct("The insulation isnt thick, and it isn't cheap")
    # then
    assert corrected.text == "The insulation isnt thick, and it isn't cheap"


def test_a_word_is_not_turned_into_a_base_word_no_hand_would_mistype_it_for():
    # given a base about Wi-Fi-less Linux help (its words: wiki, land, mail, stored, raised)
    s = Speller(spelling.words_of(["Read the wiki. Land, mail and stored data. Prices raised."]))
    # when a customer names things the base does not hold
    corrected = s.correct("My wifi card, the Öland ferry, Gmail: stoped working after I realised")
    # then no name or modern word is "corrected": a first letter, a key far away, a British spelling
    assert corrected.text == "My wifi card, the Öland ferry, Gmail: stoped working after I realised"
    assert not corrected.changed


def test_a_neighbouring_key_or_a_vowel_for_a_vowel_is_still_corrected():
    # given the base's "budget" and "renovation"
    s = speller()
    # then "bidget" (i beside u on the keyboard) and "renivation" (i for o) are typos of them
    assert s.correct("a bidget for the renivation").text == "a budget for the renovation"


def test_british_spellings_count_as_english():
    assert all(spelling.is_english(word) for word in ("realised", "colour", "centre", "defence", "travelled"))
    assert not spelling.is_english("insulaton")


def test_a_key_touches_its_row_neighbours_and_the_keys_beside_it_above_and_below():
    keys = spelling.neighbour_keys()
    assert keys["f"] == set("dgrtcv") and keys["a"] == set("qwsz") and keys["p"] == set("ol")
