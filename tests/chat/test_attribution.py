"""Citations attributed to a generated answer that did not cite its passages."""

from chat.pipeline.attribution import cite_answer, insert_marks
from chat.pipeline.passages import Passage


def passage(n, text):
    return Passage(n=n, text=text, document_id=n, document_title=f"Doc {n}", page=None, section="",
                   chunk_id=n, faq_entry_id=None, relevance=0.5)


PASSAGES = [
    passage(1, "A tiled roof lasts about 50 years. Metal roofs need repainting every 15 years."),
    passage(2, "A ground source heat pump needs a drilling permit from the municipality. Drilling takes two days."),
]


def test_the_models_own_citations_are_kept_as_they_are(embedder):
    text, cited = cite_answer("You need a permit [2].", PASSAGES)
    assert text == "You need a permit [2]." and [c.n for c in cited] == [2]


def test_an_uncited_sentence_that_restates_a_passage_gets_its_number(embedder):
    # given an answer that restates passage 2 but cites nothing, and adds a line no passage states
    answer = "You need a drilling permit from the municipality for a ground source heat pump. Have a nice day!"
    # when citations are attributed
    text, cited = cite_answer(answer, PASSAGES)
    # then the restating sentence cites passage 2, and the other stays uncited
    assert text == ("You need a drilling permit from the municipality for a ground source heat pump. [2] "
                    "Have a nice day!")
    assert [c.n for c in cited] == [2] and cited[0].document_title == "Doc 2"


def test_an_answer_no_passage_states_gets_no_invented_source(embedder):
    text, cited = cite_answer("The Eiffel Tower is 330 metres tall.", PASSAGES)
    assert text == "The Eiffel Tower is 330 metres tall." and cited == []


def test_without_passages_nothing_changes():
    assert cite_answer("Hello there, how can I help?", []) == ("Hello there, how can I help?", [])


def test_marks_go_at_the_given_offsets():
    assert insert_marks("One. Two.", {4: 1, 9: 2}) == "One. [1] Two. [2]"


def test_lines_that_only_echo_a_passage_header_are_dropped_and_their_number_kept():
    from chat.pipeline.attribution import without_echoed_headers

    # given an answer that copied the prompt's layout: a label, a header with its number, a header without one
    answer = ("Passage:\n[2] (Doc 2)\nA drilling permit is needed.\n\n1. (Doc 1)\nRoofs last 50 years [1].\n"
              "(see the manual)")
    # then the header lines go, their numbers follow the next line (unless it cites already), other lines stay
    assert without_echoed_headers(answer, PASSAGES) == (
        "A drilling permit is needed. [2]\n\nRoofs last 50 years [1].\n(see the manual)")


def test_an_answer_made_only_of_headers_is_left_empty():
    from chat.pipeline.attribution import without_echoed_headers

    # (message_finalize then stores Kefu's refusal: the stream showed nothing of it either)
    assert without_echoed_headers("1. [1] (Doc 1)\n2. [2] (Doc 2)", PASSAGES) == ""


ECHOING = ("Passage:\n[2] (Doc 2)\nA drilling permit is needed.\n\n1. (Doc 1)\nRoofs last 50 years [1].\n"
           "(see the manual)\n1. Apply online.\n[9] (Doc 9)\nThe answer is:\nDone")


def streamed(text: str, cuts: list[int]) -> str:
    from chat.pipeline.attribution import EchoedHeaderFilter

    headers = EchoedHeaderFilter(PASSAGES)
    bounds = [0, *sorted(set(cuts)), len(text)]
    return "".join(headers.feed(text[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)) + headers.flush()


def test_the_streamed_header_filter_shows_what_the_whole_text_gives_however_it_is_split():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from chat.pipeline.attribution import without_echoed_headers

    whole = without_echoed_headers(ECHOING, PASSAGES)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=len(ECHOING)), max_size=40))
    def same(cuts):
        # given the answer split into arbitrary pieces, as tokens arrive
        # then the pieces shown add up to the whole text's result
        assert streamed(ECHOING, cuts).strip() == whole

    same()
    assert whole == ("A drilling permit is needed. [2]\n\nRoofs last 50 years [1].\n(see the manual)\n1. Apply online."
                     "\n[9] (Doc 9)\nDone")


def test_a_content_line_is_shown_as_soon_as_it_cannot_be_a_header():
    from chat.pipeline.attribution import EchoedHeaderFilter

    # given the filter of a stream
    headers = EchoedHeaderFilter(PASSAGES)
    # when a numbered line and a sentence arrive, and then a header
    assert headers.feed("1") == ""  # could still be "1. (Doc 1)"
    assert headers.feed(". Ap") == "1. Ap"  # cannot any more: shown at once
    assert headers.feed("ply.\nThe") == "ply.\n"  # "The" may still be the label "The answer is:"
    assert headers.feed(" end.\n[2] (Doc") == "The end.\n"  # a header is held until its line ends
    assert headers.feed(" 2)\n") == ""  # ... and dropped with its newline
    assert headers.feed("Permit needed.") == "Permit needed."
    assert headers.flush() == " [2]"  # its number follows the next content line
