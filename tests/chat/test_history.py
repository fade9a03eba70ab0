"""History: the turns that fit the budget, and follow-ups rewritten into standalone queries."""

import pytest

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


def test_a_follow_up_keeps_its_own_ask_and_takes_only_the_topic_from_history():
    turns = [Turn("user", "Do I need a permit for a heat pump?"), Turn("assistant", "Yes [1].")]
    rewritten = standalone_question("And how long does it take?", turns)
    assert rewritten.depends_on_history
    assert rewritten.query == "And how long does permit heat pump take?"


def test_an_ellipsis_gets_the_topic_after_the_new_ask():
    # given a question with no topic of its own and no pronoun to fill
    turns = [Turn("user", "We're planning a new kitchen."), Turn("assistant", "Here is what we know [1].")]
    rewritten = standalone_question("How much should I budget?", turns)
    assert rewritten.depends_on_history and rewritten.query == "How much should I budget? kitchen"


def test_a_determiner_is_not_a_pronoun():
    turns = [Turn("user", "I'm thinking about replacing the roof"), Turn("assistant", "Here is what we know [1].")]
    switched = standalone_question("What's the weather going to be like this weekend?", turns)
    assert not switched.depends_on_history

def test_a_pronoun_follow_up_after_a_statement_gets_the_statements_topic_not_its_wording():
    # given the customer said what they are planning, without asking
    turns = [Turn("user", "I'm thinking about replacing the roof"), Turn("assistant", "Here is what we know [1].")]
    # when they ask about the cost of "that"
    rewritten = standalone_question("roughly what would that cost me?", turns)
    # then the cost question is kept, its pronoun filled in with the topic only
    assert rewritten.query == "roughly what would replacing roof cost me?"


def test_a_chain_of_follow_ups_keeps_the_topic_that_started_it():
    turns = [Turn("user", "Do I need a permit for a heat pump?"), Turn("assistant", "Yes [1]."),
             Turn("user", "How long does it take?"), Turn("assistant", "Ten weeks [1].")]
    assert standalone_question("And what does it cost?", turns).query == "And what does permit heat pump cost?"


def test_a_topic_switch_leaves_the_history_out():
    turns = [Turn("user", "Do I need a permit for a heat pump?"), Turn("assistant", "Yes [1].")]
    switched = standalone_question("How long does a tiled roof last?", turns)
    assert switched.query == "How long does a tiled roof last?" and not switched.depends_on_history


def test_a_self_contained_question_is_left_alone():
    turns = [Turn("user", "Do I need a permit for a heat pump?"), Turn("assistant", "Yes [1].")]
    same = standalone_question("What are your opening hours on Saturday?", turns)
    assert same.query == "What are your opening hours on Saturday?" and not same.depends_on_history


def test_chinese_follow_ups_are_recognised():
    turns = [Turn("user", "安装热泵需要许可证吗？"), Turn("assistant", "需要 [1]。")]
    rewritten = standalone_question("那要多久？", turns)
    assert rewritten.depends_on_history and rewritten.query == "那要多久？ 安装热泵许可证"
    assert standalone_question("它要多久？", turns).query == "安装热泵许可证要多久？"
    assert not standalone_question("那要多久？", []).depends_on_history


def test_the_inherited_topic_leaves_out_the_generic_part_of_the_first_ask():
    # given a first question about a roof's cost
    turns = [Turn("user", "What does a new roof cost for a normal villa?"), Turn("assistant", "About 200,000 SEK [1].")]
    # when the follow-up asks something else about it
    rewritten = standalone_question("is that deductible?", turns)
    # then it is about the roof, not about the cost again
    assert rewritten.query == "is that deductible? roof villa"


@pytest.mark.parametrize("question", ["Different thing: how do I measure radon?",
                                      "By the way, is it true that slate roofs last a century?",
                                      "My dishwasher shows error E24 after the kitchen job, how do I fix it?"])
def test_an_announced_or_fully_named_new_topic_is_a_switch_even_with_a_pronoun(question):
    turns = [Turn("user", "Who is eligible for the ROT deduction?"), Turn("assistant", "Owners [1].")]
    switched = standalone_question(question, turns)
    assert switched.query == question and not switched.depends_on_history


def test_a_connective_keeps_a_long_follow_up_in_the_conversation():
    turns = [Turn("user", "What warranty do I get on a bathroom renovation?"), Turn("assistant", "Two years [1].")]
    rewritten = standalone_question("and what if I changed something in it myself afterwards?", turns)
    assert rewritten.depends_on_history and "warranty bathroom renovation" in rewritten.query


def test_numbers_and_one_name_no_topic_of_their_own():
    turns = [Turn("user", "We are looking at a heat pump."), Turn("assistant", "Here is what we know [1].")]
    rewritten = standalone_question("what would it cost to install one in a 150 m2 house?", turns)
    assert rewritten.query == "what would heat pump cost to install one in a 150 m2 house?"


def test_a_contracted_pronoun_is_replaced_whole_and_keeps_its_verb():
    # given a question about a warranty period
    turns = [Turn("user", "How long is the warranty period under ABS 18?"), Turn("assistant", "Five years [1].")]
    # when the follow-up says "it's"
    rewritten = standalone_question("what should I do when it's about to run out?", turns)
    # then the topic takes the pronoun's place and the verb stays
    assert rewritten.query == "what should I do when warranty period abs 18 is about to run out?"


def test_a_contraction_and_a_limit_are_not_the_topic_a_follow_up_inherits():
    turns = [Turn("user", "What's the radon limit for homes in Sweden?"), Turn("assistant", "200 Bq/m³ [1].")]
    rewritten = standalone_question("how do you measure it?", turns)
    assert rewritten.query == "how do you measure radon homes sweden?"


def test_does_that_count_as_points_back_to_the_situation_described_before():
    # given a situation described in the first turn
    turns = [Turn("user", "We bought a 1970s house and have now found damp and mould in the crawl space."),
             Turn("assistant", "Here is what we know [1].")]
    # when the customer asks whether "that" counts as something
    rewritten = standalone_question("does that count as a hidden defect?", turns)
    # then the situation's topic fills the pronoun; the new ask is kept
    assert rewritten.depends_on_history
    assert rewritten.query.startswith("does 1970s house damp mould crawl space")
    assert rewritten.query.endswith("count as a hidden defect?")


def test_a_particle_is_no_topic_of_its_own():
    # given a roof question, when the follow-up's only other word is "up" ("up there")
    turns = [Turn("user", "What does a new roof cost on a 1960s villa?"), Turn("assistant", "About … [1].")]
    rewritten = standalone_question("how long will the roofers be up there?", turns)
    # then it is an ellipsis: the roof topic is added after the new ask
    assert rewritten.query == "how long will the roofers be up there? roof 1960s villa"


def test_the_installation_of_what_was_just_discussed_leans_on_the_conversation():
    # given a heat pump, when the customer asks about "the installation"
    turns = [Turn("user", "We're looking at getting a heat pump."), Turn("assistant", "Here is what we know [1].")]
    rewritten = standalone_question("Can I get ROT for the installation?", turns)
    # then the heat pump is added after the new ask
    assert rewritten.depends_on_history
    assert rewritten.query == "Can I get ROT for the installation? heat pump"


def test_a_question_naming_its_own_topic_with_a_pronoun_offers_the_reading_with_the_conversations_topic():
    # given a roof question
    turns = [Turn("user", "What does a new roof cost for a normal house?"), Turn("assistant", "About … [1].")]
    # when the next question names a topic of its own but also says "it"
    question = "do the people doing it need any kind of certification?"
    standalone = standalone_question(question, turns)
    # then it stands alone, and offers the reading with the roof in the pronoun's place for the base to weigh
    assert standalone.query == question and not standalone.depends_on_history
    assert standalone.alternative.query == "do the people doing roof house need any kind of certification?"
    assert standalone.alternative.depends_on_history and standalone.alternative.topic == "roof house"


def test_one_as_the_object_of_a_verb_points_back():
    turns = [Turn("user", "How many years does a heat pump usually last?"), Turn("assistant", "15–20 years [1].")]
    standalone = standalone_question("can I get rot for having one put in?", turns)
    assert standalone.depends_on_history and standalone.query == "can I get rot for having heat pump put in?"


def test_a_determiner_offers_no_second_reading():
    turns = [Turn("user", "I'm thinking about replacing the roof."), Turn("assistant", "Here is what we know [1].")]
    standalone = standalone_question("What's the weather going to be like this weekend?", turns)
    assert standalone.alternative is None and not standalone.depends_on_history


def test_a_question_without_history_offers_no_second_reading():
    assert standalone_question("do the people doing it need any kind of certification?", []).alternative is None


def test_that_opening_a_relative_clause_is_not_a_pronoun():
    # given a question about quotes, when the follow-up says "the quote that I should budget for"
    turns = [Turn("user", "Should I just go with the cheapest quote?"), Turn("assistant", "Not always [1].")]
    rewritten = standalone_question("ok. what costs are usually not in the quote that I should budget for on top?",
                                    turns)
    # then "that" is left in place (the topic is added after the ask instead)
    assert "quote that I should budget" in rewritten.query


@pytest.mark.parametrize("question", [
    "and the final approval at the end, what's that one?",
    "the kontrollplan he mentioned — what's that and who writes it?",
    "what about the facade, how long does it last?",
])
def test_a_topic_set_out_ahead_of_its_question_is_what_the_pointing_word_means(question):
    # given a conversation about another topic
    turns = [Turn("user", "What is a startbesked?"), Turn("assistant", "It is the permission to start [1].")]
    # when the follow-up names its own topic before a break and then points at it
    alone = standalone_question(question, turns)
    # then the question is read as asked: the earlier topic is not filled in
    assert alone.query == question and not alone.depends_on_history and alone.alternative is None


@pytest.mark.parametrize("question", [
    "in our house, what would that cost?",
    "I'm starting out as a carpenter — how do I get it?",
    "ok, and how long does it take?",
])
def test_a_circumstance_or_a_statement_ahead_of_the_break_still_leans_on_the_conversation(question):
    turns = [Turn("user", "What is F-skatt?"), Turn("assistant", "A tax certificate [1].")]
    alone = standalone_question(question, turns)
    assert alone.depends_on_history and "f-skatt" in alone.query


def test_they_after_a_plural_noun_of_the_same_question_is_that_noun():
    # given a conversation about asbestos in the roof
    turns = [Turn("user", "What happens if we find asbestos in our roof?"), Turn("assistant", "Stop work [1].")]
    # when the follow-up's "they" stands for the workers it names
    alone = standalone_question("what rules do the workers have to follow when they remove it?", turns)
    # then "it" gets the conversation's topic, and "they" stays the workers
    reading = alone.alternative or alone
    assert "when they remove" in reading.query and "asbestos roof" in reading.query
