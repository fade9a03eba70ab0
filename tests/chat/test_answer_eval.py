"""answer_eval: the goal figures on hand-built results, the command on a real small base, the shipped sets."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from chat.evaluation import (
    Dialogue,
    Evaluation,
    Expected,
    Result,
    Row,
    Source,
    answerability_pairs,
    figures,
    follow_up_right,
    generator_in_extractive,
    in_base_refused,
    in_base_right,
    is_right,
    out_of_base_offers,
    out_of_base_refused,
    refusals_offering_the_answer,
    reliability,
    repeats_a_sentence,
    table_row,
    uncited_answers,
)

EVAL_DIR = Path(__file__).resolve().parents[2] / "chat" / "data" / "eval"
ROOF = Source("tak-001", "What does a roof replacement cost?", "")
KITCHEN = Source("kok-001", "What does a kitchen renovation cost?", "")


def write(tmp_path, rows, name="questions.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows), encoding="utf-8")
    return path


def answered(*sources: Source, text: str = "An answer. [1]") -> Result:
    return Result("answered", "extractive", text, citations=sources)


# --- one reply ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "repeats"), [
    ("Clay tiles last 40 years. [1] Clay tiles last 40 years. [2]", True),
    ("Clay tiles last 40 years [1].   Clay  tiles last 40 years [2].", True),
    ("屋顶需要许可。[1] 屋顶需要许可。[2]", True),
    ("Clay tiles last 40 years. [1] Metal lasts 70 years. [2]", False),
    ("The roof costs 1,500 SEK/m². [1] [2]", False),
    ("", False),
])
def test_a_reply_repeats_a_sentence_when_the_same_text_comes_twice_ignoring_marks_and_spacing(text, repeats):
    # given a reply text / when it is checked / then only a sentence said twice counts
    assert repeats_a_sentence(text) is repeats


def test_an_in_base_reply_is_right_only_when_its_first_citation_is_the_expected_source():
    expected = Expected(("tak-001",))
    # the expected source cited first, or in a direct answer (its one citation): right
    assert is_right("in_base", expected, answered(ROOF, KITCHEN))
    assert is_right("in_base", expected, Result("direct", "faq", "…", citations=(ROOF,)))
    # cited only second, or not at all: wrong
    assert not is_right("in_base", expected, answered(KITCHEN, ROOF))
    assert not is_right("in_base", expected, answered())
    # a refusal is never a right in-base reply, whatever it carries
    assert not is_right("in_base", expected, Result("refused", "no_relevant_passage", citations=(ROOF,)))
    # a generation that has not run: its first retrieved passage stands in for its first citation
    assert is_right("in_base", expected, Result("pending", "generated", passages=(ROOF, KITCHEN)))
    assert not is_right("in_base", expected, Result("pending", "generated", passages=(KITCHEN, ROOF)))


def test_refusals_count_whether_they_offered_the_right_question():
    # given two in-base refusals (one offering the expected entry), an answered one, and two out-of-base refusals
    rows = (Row("roof cost?", "in_base", Expected(("tak-001",))), Row("kitchen?", "in_base", Expected(("kok-001",))),
            Row("roof again?", "in_base", Expected(("tak-001",))), Row("weather?", "out_of_base", Expected()),
            Row("bank?", "out_of_base", Expected()))
    results = (Result("refused", "unanswerable", suggested=(KITCHEN, ROOF)), Result("refused", "unanswerable"),
               answered(ROOF), Result("refused", "out_of_scope"), Result("refused", "unanswerable", suggested=(ROOF,)))
    ev = Evaluation("extractive", rows, results)
    # then one of the two in-base refusals was one click from its answer, and one out-of-base refusal offered some
    offering = refusals_offering_the_answer(ev)
    assert (offering.numerator, offering.denominator) == (1, 2)
    noise = out_of_base_offers(ev)
    assert (noise.numerator, noise.denominator) == (1, 2)


def test_an_out_of_base_reply_is_right_when_refused_or_handed_off():
    assert is_right("out_of_base", Expected(), Result("refused", "out_of_scope"))
    assert is_right("out_of_base", Expected(), Result("handed_off", "intent"))
    assert not is_right("out_of_base", Expected(), answered(KITCHEN))
    assert not is_right("out_of_base", Expected(), Result("pending", "chitchat"))


def test_an_expected_section_matches_the_cited_last_heading_or_document_title_without_numbering():
    expected = Expected(sections=("How do I put a package on hold?",))
    section = Source("", "Chapter 7. Basics", "Chapter 7. Basics > 7.12. How do I put a package on hold?")
    parent = Source("", "Chapter 7. Basics", "Chapter 7. Basics > 7.12. How do I put a package on hold? > 7.12.1. dpkg")
    assert expected.matches(section)
    assert not expected.matches(parent)  # a subsection is another source
    assert Expected(sections=("chapter 7.  basics",)).matches(Source("", "Chapter 7. Basics", ""))
    assert Expected(sections=("什么是 Debian 软件包？",)).matches(Source("", "第 7 章", "第 7 章 > 7.1. 什么是 Debian 软件包？"))
    # several accepted sources: any one of them
    assert Expected(("rot-007", "rot-019")).matches(Source("rot-019"))


# --- figures --------------------------------------------------------------------------------------------

def test_each_figure_counts_its_own_questions_against_its_goal():
    # given two in-base questions (one right, one refused) and two out-of-base (one refused, one answered)
    rows = (Row("roof cost?", "in_base", Expected(("tak-001",))), Row("kitchen?", "in_base", Expected(("kok-001",))),
            Row("weather?", "out_of_base"), Row("poem?", "out_of_base"))
    results = (answered(ROOF), Result("refused", "no_relevant_passage"), Result("refused", "out_of_scope"),
               answered(KITCHEN))
    ev = Evaluation("extractive", rows, results)
    # when / then
    right, refused, out = in_base_right(ev), in_base_refused(ev), out_of_base_refused(ev)
    assert (right.numerator, right.denominator, right.met) == (1, 2, False)
    assert (refused.numerator, refused.denominator, refused.met) == (1, 2, False)
    assert (out.numerator, out.denominator, out.met) == (1, 2, False)
    assert right.cell() == "0.500 (1/2) ✗"
    assert {f.key: f for f in figures(ev)}["in_base_refusal_reasons"].cell() == "no_relevant_passage 1"


def test_follow_ups_are_scored_on_the_second_reply_and_split_by_kind():
    # given three dialogues whose first replies are all right and whose follow-ups are right, wrong, right
    dialogues = (
        Dialogue(("roof?", "what would that cost?"), "in_base", Expected(("tak-001",)), "continuation"),
        Dialogue(("roof?", "how long?"), "in_base", Expected(("tak-012",)), "continuation"),
        Dialogue(("roof?", "what's the weather?"), "out_of_base", Expected(), "switch"),
    )
    follow_ups = ((answered(ROOF), answered(ROOF)), (answered(ROOF), answered(ROOF)),
                  (answered(ROOF), Result("refused", "out_of_scope")))
    ev = Evaluation("extractive", dialogues=dialogues, follow_ups=follow_ups)
    # when
    overall, continuations, switches = (follow_up_right(ev), follow_up_right(ev, "continuation"),
                                        follow_up_right(ev, "switch"))
    # then
    assert (overall.numerator, overall.denominator) == (2, 3)
    assert (continuations.numerator, continuations.denominator) == (1, 2)
    assert (switches.numerator, switches.denominator, switches.met) == (1, 1, True)


def test_the_counts_cover_every_reply_and_the_generator_count_only_extractive_mode():
    # given a repeated sentence, an uncited direct answer, and a chit-chat handed to the generator
    rows = (Row("a?", "in_base", Expected(("tak-001",))), Row("b?", "in_base", Expected(("tak-001",))),
            Row("hi", "out_of_base"))
    results = (answered(ROOF, text="Tiles last. [1] Tiles last. [1]"), Result("direct", "faq", "Yes."),
               Result("pending", "chitchat"))
    dialogues = (Dialogue(("a?", "b?"), "in_base", Expected(("tak-001",)), "switch"),)
    follow_ups = ((answered(ROOF), Result("pending", "generated", passages=(ROOF,))),)
    # when
    by_key = {f.key: f for f in figures(Evaluation("extractive", rows, results, dialogues, follow_ups))}
    generative = generator_in_extractive(Evaluation("generative", rows, results, dialogues, follow_ups))
    # then: five replies read by customers; two pending ones reach the generator in extractive mode
    assert (by_key["repeated_sentence"].numerator, by_key["repeated_sentence"].denominator) == (1, 5)
    assert (by_key["answered_without_citation"].numerator, by_key["answered_without_citation"].denominator) == (1, 3)
    assert (by_key["generator_in_extractive"].numerator, by_key["generator_in_extractive"].met) == (2, False)
    assert not generative.applies and generative.cell() == "-"
    assert uncited_answers(Evaluation("extractive", rows[:1], results[:1])).met is True
    # a canned reply to small talk is an answer without sources, not an uncited knowledge answer
    greeting = Evaluation("extractive", (Row("hi", "out_of_base"),), (Result("answered", "smalltalk", "Hello!"),))
    assert uncited_answers(greeting).denominator == 0


def test_the_reliability_table_pairs_probabilities_with_labels_or_says_why_there_is_none():
    rows = (Row("a?", "in_base", Expected(("tak-001",))), Row("b?", "out_of_base"), Row("c?", "out_of_base"))
    unscored = Evaluation("extractive", rows, (answered(ROOF), Result("refused"), Result("refused")))
    assert reliability(unscored).reason.startswith("n/a")
    scored = Evaluation("extractive", rows, (Result("answered", answerability=0.9, citations=(ROOF,)),
                                             Result("refused", answerability=0.2), Result("refused")))
    assert answerability_pairs(scored) == [(0.9, True), (0.2, False)]
    table = reliability(scored)
    if table.reason:  # the answerability stage has not landed in this tree
        assert "reliability_table" in table.reason and not table.rows
    else:  # one row per non-empty bin, observed = in-base
        assert sum(row[1] for row in table.rows) == 2
        assert {row[3] for row in table.rows} == {1.0, 0.0}


def test_a_reliability_row_reads_from_a_tuple_a_dict_or_a_record():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Bin:
        low: float
        high: float
        count: int
        mean_predicted: float
        observed_rate: float

    assert table_row(("0.9–1.0", 3, 0.95, 1.0)) == ("0.9–1.0", 3, 0.95, 1.0)
    assert table_row({"bin": "0–0.1", "count": 2, "mean_predicted": 0.05, "observed_rate": 0.0}) == (
        "0–0.1", 2, 0.05, 0.0)
    assert table_row(Bin(0.9, 1.0, 3, 0.95, 1.0)) == ("0.90–1.00", 3, 0.95, 1.0)


# --- the command on a real base -------------------------------------------------------------------------

def test_it_reports_questions_in_both_modes_with_the_goals(support_kb, tmp_path):
    from chat.models import Message
    from kb.models import FaqEntry

    # given a base whose opening-hours entry has an external id, and labelled questions
    FaqEntry.objects.filter(question__startswith="What are your opening").update(external_id="hours")
    path = write(tmp_path, [
        {"question": "What are your opening hours?", "expect": "in_base", "faq_id": "hours"},
        {"question": "How deep is the borehole for a heat pump?", "expect": "in_base", "section": "Heat pumps"},
        {"question": "Who won the football match yesterday?", "expect": "out_of_base"},
    ])
    # when
    out = StringIO()
    call_command("answer_eval", support_kb.slug, "--questions", str(path), stdout=out)
    lines = out.getvalue().splitlines()
    # then: each question per mode, and every goal figure with its goal
    assert any("direct ✓" in line and "opening hours" in line for line in lines)
    assert any(line.startswith("direct-answer precision") and "1.000 (1/1)" in line for line in lines)
    assert any(line.startswith("out-of-base: refused") and "≥ 0.95" in line and "(1/1)" in line for line in lines)
    in_base = next(line for line in lines if line.startswith("in-base: reply is right"))
    assert "≥ 0.85" in in_base and in_base.count("/2)") == 2
    assert any(line.startswith("answered replies without a citation") for line in lines)
    assert Message.objects.count() == 0  # nothing stored


def test_dialogues_run_the_follow_up_with_the_first_turn_and_report_json(support_kb, tmp_path):
    from chat.models import Conversation, Message

    # given two continuations and a switch to an out-of-base question
    path = write(tmp_path, [
        {"turns": ["We want a ground source heat pump.", "Do we need a permit for it?"], "expect": "in_base",
         "section": "Heat pumps", "kind": "continuation"},
        {"turns": ["Our roof is old.", "How long does it last?"], "expect": "in_base", "section": "Roofing",
         "kind": "continuation"},
        {"turns": ["What are your opening hours?", "Who won the football match yesterday?"],
         "expect": "out_of_base", "kind": "switch"},
    ], name="dialogues.jsonl")
    # when
    out = StringIO()
    call_command("answer_eval", support_kb.slug, "--dialogues", str(path), "--json", stdout=out)
    summary = json.loads(out.getvalue())
    # then: the follow-up figures are there per mode, counted over the right dialogues
    assert summary["dialogues"] == 3 and summary["questions"] == 0
    for mode in ("generative", "extractive"):
        figures_ = summary["modes"][mode]
        assert figures_["follow_up_right"]["denominator"] == 3
        assert figures_["follow_up_right_continuation"]["denominator"] == 2
        assert figures_["follow_up_right_switch"]["denominator"] == 1
        assert figures_["follow_up_right"]["goal"] == "≥ 0.85"
        assert figures_["repeated_sentence"]["denominator"] == 6  # both turns of each dialogue
        assert figures_["in_base_right"]["value"] is None  # no questions
    assert summary["modes"]["generative"]["generator_in_extractive"]["applies"] is False
    assert Message.objects.count() == 0 and Conversation.objects.count() == 0


def test_the_follow_up_is_retrieved_with_the_standalone_rewrite(support_kb, tmp_path):
    from chat.pipeline import history

    # given a follow-up that leans on the first question
    first, follow_up = "We want a ground source heat pump.", "Do we need a permit for it?"
    path = write(tmp_path, [{"turns": [first, follow_up], "expect": "in_base", "section": "Heat pumps",
                             "kind": "continuation"}], name="dialogues.jsonl")
    rewritten = history.standalone_question(follow_up, [history.Turn("user", first)])
    # when
    out = StringIO()
    call_command("answer_eval", support_kb.slug, "--dialogues", str(path), "--modes", "extractive", stdout=out)
    # then: the row shows the query it was retrieved with exactly when the rewrite leaned on history
    assert (f"retrieved with: {rewritten.query[:90]}" in out.getvalue()) is rewritten.depends_on_history


@pytest.mark.parametrize(("lines", "message"), [
    (['{"question": "q", "expect": "out_of_base"}', "{not json"], r"questions.jsonl:2: not JSON"),
    (['{"question": "q", "expect": "maybe"}'], r":1: expect must be in_base or out_of_base"),
    (['', '{"question": "q", "expect": "in_base"}'], r":2: an in_base line names its expected source"),
    (['{"question": "q", "expect": "in_base", "faq_id": 7}'], r":1: faq_id must be a string or a list"),
    (['["q", "in_base"]'], r":1: each line must be a JSON object"),
])
def test_a_bad_questions_file_is_a_clear_error_naming_the_line(support_kb, tmp_path, lines, message):
    with pytest.raises(CommandError, match=message):
        call_command("answer_eval", support_kb.slug, "--questions", str(write(tmp_path, lines)))


@pytest.mark.parametrize(("line", "message"), [
    ({"turns": ["only one"], "expect": "out_of_base", "kind": "switch"}, r"dialogues.jsonl:2: 'turns' must be two"),
    ({"turns": ["a", "b"], "expect": "out_of_base", "kind": "tangent"}, r":2: kind must be continuation or switch"),
    ({"turns": ["a", "b"], "expect": "in_base", "kind": "switch"}, r":2: an in_base line names its expected"),
])
def test_a_bad_dialogues_file_is_a_clear_error_naming_the_line(support_kb, tmp_path, line, message):
    good = {"turns": ["a", "b"], "expect": "out_of_base", "kind": "switch"}
    path = write(tmp_path, [good, line], name="dialogues.jsonl")
    with pytest.raises(CommandError, match=message):
        call_command("answer_eval", support_kb.slug, "--dialogues", str(path))


def test_missing_files_and_arguments_are_clear_errors(support_kb, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("answer_eval", support_kb.slug, "--questions", str(tmp_path / "none.jsonl"))
    with pytest.raises(CommandError, match="give --questions, --dialogues or both"):
        call_command("answer_eval", support_kb.slug)
    path = write(tmp_path, [{"question": "q", "expect": "out_of_base"}])
    with pytest.raises(CommandError, match="--modes takes"):
        call_command("answer_eval", support_kb.slug, "--questions", str(path), "--modes", "creative")


# --- the shipped evaluation sets ------------------------------------------------------------------------

def zaragoza_faq() -> dict[str, str]:
    import zaragoza_construction_faq

    return {row["id"]: row["q"] for row in zaragoza_construction_faq.load(lang="en")}


def test_the_shipped_zaragoza_questions_are_paraphrases_of_real_entries_and_questions_from_elsewhere():
    from chat.evaluation import load_rows

    faq = zaragoza_faq()
    rows = load_rows(EVAL_DIR / "zaragoza.jsonl")
    in_base = [row for row in rows if row.expect == "in_base"]
    assert len(rows) >= 120 and len(in_base) >= 80 and len(rows) - len(in_base) >= 40
    assert all(row.expected.faq_ids and set(row.expected.faq_ids) <= faq.keys() for row in in_base)
    assert not set(faq.values()) & {row.question for row in rows}  # paraphrases, not copies
    assert len({row.question for row in rows}) == len(rows)


@pytest.mark.parametrize(("name", "in_base_at_least", "out_of_base_at_least"), [
    ("zaragoza_heldout.jsonl", 50, 25), ("zaragoza_spot.jsonl", 20, 10), ("zaragoza_blind.jsonl", 60, 30),
    ("zaragoza_blind2.jsonl", 60, 30), ("zaragoza_blind3.jsonl", 60, 30), ("zaragoza_blind4.jsonl", 60, 30),
    ("zaragoza_blind5.jsonl", 60, 30), ("zaragoza_blind6.jsonl", 60, 30),
    ("zaragoza_blind7.jsonl", 60, 30), ("zaragoza_blind8.jsonl", 60, 30), ("zaragoza_blind9.jsonl", 60, 30),
])
def test_the_other_zaragoza_sets_name_real_entries_in_words_of_their_own(name, in_base_at_least,
                                                                         out_of_base_at_least):
    from chat.evaluation import load_rows

    faq = zaragoza_faq()
    rows = load_rows(EVAL_DIR / name)
    in_base = [row for row in rows if row.expect == "in_base"]
    assert len(in_base) >= in_base_at_least and len(rows) - len(in_base) >= out_of_base_at_least
    assert all(row.expected.faq_ids and set(row.expected.faq_ids) <= faq.keys() for row in in_base)
    assert not set(faq.values()) & {row.question for row in rows}
    assert len({row.question for row in rows}) == len(rows)


def test_the_shipped_dialogues_mix_continuations_and_switches_on_real_entries():
    from chat.evaluation import load_dialogues

    faq = zaragoza_faq()
    dialogues = load_dialogues(EVAL_DIR / "zaragoza_dialogues.jsonl")
    kinds = [d.kind for d in dialogues]
    assert len(dialogues) >= 40 and kinds.count("switch") >= 10 and kinds.count("continuation") >= 20
    assert all(set(d.expected.faq_ids) <= faq.keys() for d in dialogues)
    assert any(d.expect == "out_of_base" for d in dialogues)


@pytest.mark.parametrize("name", ["zaragoza_dialogues_heldout.jsonl", "zaragoza_dialogues_blind.jsonl",
                                  "zaragoza_dialogues_blind2.jsonl", "zaragoza_dialogues_blind3.jsonl",
                                  "zaragoza_dialogues_blind4.jsonl", "zaragoza_dialogues_blind5.jsonl",
                                  "zaragoza_dialogues_blind6.jsonl", "zaragoza_dialogues_blind7.jsonl",
                                  "zaragoza_dialogues_blind8.jsonl", "zaragoza_dialogues_blind9.jsonl"])
def test_the_other_dialogue_sets_mix_continuations_and_switches_on_real_entries(name):
    from chat.evaluation import load_dialogues

    faq = zaragoza_faq()
    dialogues = load_dialogues(EVAL_DIR / name)
    kinds = [d.kind for d in dialogues]
    assert len(dialogues) >= 30 and kinds.count("switch") >= 10 and kinds.count("continuation") >= 15
    assert all(set(d.expected.faq_ids) <= faq.keys() for d in dialogues)


@pytest.mark.parametrize(("name", "directory", "pattern"), [
    ("debian-en", Path("/usr/share/doc/debian/FAQ"), "*.en.html"),
    ("debian-zh", Path("/usr/share/doc/debian/FAQ/zh-cn"), "*.zh-cn.html"),
])
def test_the_shipped_debian_questions_name_sections_of_debians_faq(name, directory, pattern):
    from chat.evaluation import heading_key, load_rows
    from kb.parsing import parse_document

    rows = load_rows(EVAL_DIR / f"{name}.jsonl")
    in_base = [row for row in rows if row.expect == "in_base"]
    assert len(in_base) >= 30 and len(rows) - len(in_base) >= 15
    assert all(row.expected.sections and not row.expected.faq_ids for row in in_base)
    files = sorted(directory.glob(pattern))
    if not files:
        pytest.skip("Debian's FAQ is not installed here: apt-get install debian-faq debian-faq-zh-cn")
    headings = {heading_key(heading) for path in files
                for section in parse_document(path.read_bytes(), path.name).sections
                for heading in section.heading_path}
    for row in in_base:
        assert {heading_key(s) for s in row.expected.sections} <= headings, row.question
        assert all(heading_key(row.question) != heading_key(s) for s in row.expected.sections)  # not verbatim
