"""Multi-turn context: the last turns that fit a token budget, and follow-ups made standalone.

Retrieval, answerability, the extract and the cache see one question at a time, so a follow-up
such as "and how long does it take?" is rewritten into a standalone query when it leans on the
conversation (a pronoun or a connective at its start, very short, or an ellipsis: fewer than two
topic words of its own once the words of the ask — cost, how long, permit — are set aside). The new ask comes first
and the history only fills in what it leaves out: the *topic words* of the previous question
(its content words, without question words, fillers like "I'm thinking about" and stop words)
are added after it, so "roughly what would that cost me?" after "I'm thinking about replacing
the roof" becomes "roughly what would that cost me? replacing roof" — the cost question about
the roof, not the roof question again. A question that does not lean on the conversation is a
topic switch and is left alone. A chain of follow-ups carries the topic of the question that
started it. A question that sets out its own topic ahead of a break ("and the final approval at the end, what's
that one?") means that topic by its pointing word, and "they" after a plural noun of the same question ("do the
workers … when they remove it?") means that noun: neither takes the conversation's topic. No model is needed, which keeps the rewrite within the pipeline's latency budget;
in generative mode the generator still receives the real turns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

# Words that make a question lean on what was said before.
FOLLOW_UP_EN = re.compile(
    r"^(and|but|also|so|what about|how about|what if|then|ok(ay)?,? (and|so|what)|is it|are they|does it|do they|can it)\b"
    r"|\b(it|its|it's|they|them|their|same)\b",
    re.IGNORECASE,
)
# "that", "this", "these", "those" (and "one") point back only as pronouns ("what would that cost", "is that
# the same", "on that?", "install one in a house"), not as determiners of a noun of the question's own ("this
# weekend", "that form", "one room").
DEMONSTRATIVE = re.compile(r"\b(that|this|these|those|one)\b(?:\W+([\w'-]+))?", re.IGNORECASE)
SUBJECTS = frozenset("i we you they he she it my our your their his her".split())
# Verbs whose object "one" stands for the thing talked about: "can I get ROT for having one put in?"
ONE_TAKERS = frozenset("""
have having get getting install installing buy buying need want fit fitting put replace replacing choose pick
order book rent hire add adding build building use using
""".split())
FOLLOW_UP_ZH = re.compile(r"^(那|那么|还有|另外|而且|所以)|它|它们|这个|那个|这些|那些|这样|那样|上面|刚才")
SHORT_QUESTION_WORDS = 3
MAX_TOPIC_WORDS = 8
# Words that carry no topic: question words, auxiliaries, pronouns, fillers of a chat opener.
STOP_EN = frozenset("""
a an the and or but if so to of in on at for with about from by as into over under than then there here
i i'm im me my mine we our you your it its it's this that these those they them their he she his her
is are was were be been being am do does did doing have has had having will would shall should can could
may might must not no yes what which who whom whose when where why how much many roughly approximately
about around any some anything something thinking think planning plan want wanted wanting like would
need needed also just really please tell know let get got going go ok okay well hi hello thanks thank
we're i'd i've we've you're they're i'll we'll don't doesn't isn't aren't can't won't looking look else
by way other another new too either more most very lot usually roughly typically still
myself yourself ourselves themselves afterwards later something anything everything nothing someone anyone
one ones without within
what's where's who's how's that's there's here's let's up down out off back now recently ago bought found noticed
getting before after needs we'd you'd they'd he'd she'd you'll they'll it'll
""".split())
# A connective opener: the question continues the conversation whatever else it names.
CONTINUES = re.compile(r"^\W*(and|but|so|also|then|what about|how about|what if)\b", re.IGNORECASE)
# Words that name what is asked, not what it is about: a question made only of these ("how much should I
# budget?", "how long will I have to wait?") leans on the conversation for its topic.
ASK_WORDS = frozenset("""
cost costs price prices budget expensive cheap pay long take takes time wait last lasts valid allowed
required need permit big size many often soon quickly fast maximum minimum amount does work works mean
means happen happens help apply start begin finish prove check do done covered cover deduct deduction
count counts qualify qualifies considered classed install installing installation installed fitting
""".split())
# The generic part of an ask, left out of the topic a follow-up inherits: after "What does a new roof cost?",
# "is that deductible?" is about the roof, not about its cost.
GENERIC_ASK = frozenset("""
cost costs price prices budget expensive cheap pay long take takes time wait last lasts valid allowed required
big size many often soon quickly fast maximum minimum amount work works mean means happen happens help
normal typical ordinary average limit limits years year months weeks
""".split())
OWN_TOPIC_WORDS = 2  # a question with this many topic words of its own is about its own topic
SWITCH_TOPIC_WORDS = 3  # ...and with this many, it is even when it has a pronoun ("…error E24, how do I fix it?")
# Openers that announce a new topic.
SWITCH_EN = re.compile(r"^\W*(different (thing|question|topic)|another (thing|question)|something else|new question"
                       r"|other question|unrelated|by the way|btw|also,? unrelated|one more thing)\b", re.IGNORECASE)
SWITCH_ZH = re.compile(r"^\W*(另外一个问题|换个问题|还有一个问题|另一个问题|顺便问一下|题外话)")
STOP_ZH = re.compile(r"我想|我要|我在|我们|请问|想要|打算|考虑|一下|怎么|怎样|什么|多少|哪些|哪个|如何|为什么|是否|可以|能否|需要|吗|呢|吧|啊|呀|的|了|是|我|你|您|？|\?|。|，|！")


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant"
    text: str


@dataclass(frozen=True)
class Standalone:
    query: str
    depends_on_history: bool
    topic: str = ""  # the topic words a later follow-up inherits
    # A question that names a topic of its own yet points back ("do the people doing it need a
    # certification?" after a roof's cost): its reading with the conversation's topic filled in. The pipeline
    # keeps whichever reading the base matches better (chat.services.standalone_of).
    alternative: Standalone | None = None


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per CJK character, ~4 characters per token otherwise."""
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return cjk + max(1, (len(text) - cjk) // 4)


def history_window(turns: list[Turn], *, budget_tokens: int) -> list[Turn]:
    """The most recent turns whose total estimate fits the budget, oldest first, never a lone answer first."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        cost = approx_tokens(turn.text)
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    while kept and kept[0].role == "assistant":
        kept.pop(0)
    return kept


def own_topic_words(question: str) -> list[str]:
    """The words of an English question that name a topic (not what is asked about it)."""
    return [word for word in topic_words(question).split()
            if word not in ASK_WORDS and not any(ch.isdigit() for ch in word)]  # "150 m2" names no topic


def pointing_spans(question: str) -> list[tuple[int, int]]:
    """Where a demonstrative (or "one") is used as a pronoun: at the end, before a function word or a word of
    the ask ("what would that cost?"), or — "one" — as the object of a verb ("for having one put in")."""
    spans = []
    for match in DEMONSTRATIVE.finditer(question):
        nxt = match.group(2)
        before = re.findall(r"[\w'-]+", question[:match.start(1)].lower())[-1:]
        if relative_that(match.group(1), before, nxt):
            continue
        if (nxt is None or nxt.lower() in STOP_EN or nxt.lower() in ASK_WORDS
                or (match.group(1).lower() == "one" and before and before[0] in ONE_TAKERS)):
            spans.append(match.span(1))
    return spans


def relative_that(word: str, before: list[str], nxt: str | None) -> bool:
    """"that" opening a relative clause after a noun ("the costs not in the quote that I should budget for"),
    not a pronoun: a content word before it and a subject after it."""
    return (word.lower() == "that" and bool(before) and before[0] not in STOP_EN and before[0] not in ASK_WORDS
            and nxt is not None and nxt.lower() in SUBJECTS)


def points_back(question: str) -> bool:
    """A demonstrative used as a pronoun (:func:`pointing_spans`)."""
    return bool(pointing_spans(question))


def looks_like_follow_up(question: str) -> bool:
    if SWITCH_EN.search(question) or SWITCH_ZH.search(question):
        return False
    if FOLLOW_UP_ZH.search(question):
        return True
    if re.search(r"[\u4e00-\u9fff]", question):
        return False
    own = len(own_topic_words(question))
    if own >= SWITCH_TOPIC_WORDS and not CONTINUES.search(question):  # names its own topic fully: stands alone
        return False
    if FOLLOW_UP_EN.search(question) or points_back(question) or len(question.split()) <= SHORT_QUESTION_WORDS:
        return True
    return own < OWN_TOPIC_WORDS  # an ellipsis: "how much should I budget?"


def topic_words(question: str) -> str:
    """The words of a question that name its topic, in order, without question words and fillers."""
    if re.search(r"[\u4e00-\u9fff]", question):
        return STOP_ZH.sub("", question).strip()
    words = re.findall(r"[\w'-]+", question.lower())
    kept: list[str] = []
    for word in words:
        if word not in STOP_EN and len(word) > 1 and word not in kept:
            kept.append(word)
    return " ".join(kept[:MAX_TOPIC_WORDS])


def inherited_topic(question: str) -> str:
    """What a follow-up to this question inherits: its topic words without the generic part of its ask."""
    words = topic_words(question)
    if re.search(r"[\u4e00-\u9fff]", question):
        return words
    kept = [word for word in words.split() if word not in GENERIC_ASK]
    return " ".join(kept) or words


def standalone_question(question: str, turns: list[Turn]) -> Standalone:
    """The query to retrieve with: the question itself, or — for a follow-up — the question with its
    pronoun replaced by the topic of the conversation's previous question (the topic it inherited, for
    a chain), or with that topic added after it when there is no pronoun to fill (an ellipsis)."""
    users = [turn for turn in turns if turn.role == "user"]
    if not users or names_its_referent(question):
        return Standalone(question, False, inherited_topic(question))
    follow_up = looks_like_follow_up(question)
    if not follow_up and not may_point_back(question):
        return Standalone(question, False, inherited_topic(question))
    topic = standalone_question(users[-1].text, users[:-1][-3:]).topic
    if not topic or topic.lower() in question.lower():  # nothing to fill in
        return Standalone(question, False, inherited_topic(question))
    filled = fill_pronoun(question, topic)
    contextual = filled if filled != question else f"{question} {topic}"
    alone = Standalone(question, False, inherited_topic(question))
    if not follow_up:
        return replace(alone, alternative=Standalone(contextual, True, topic))
    return Standalone(contextual, True, topic)


def may_point_back(question: str) -> bool:
    """An English question with a word that may point back ("it", "they", a pronoun "that" or "one"), though it
    names enough of a topic to stand alone: "…error E24, how do I fix it?" does, "do the people doing it need a
    certification?" does not. Only the base can tell which (chat.services.standalone_of)."""
    if SWITCH_EN.search(question) or re.search(r"[\u4e00-\u9fff]", question):
        return False
    return bool(FOLLOW_UP_EN.search(question) or points_back(question))


# A topic set out ahead of its question ("and the final approval at the end, what's that one?", "the
# kontrollplan — what's that and who writes it?"): the pointing word after the break stands for that lead.
LEAD_BREAK = re.compile(r"\s[—–-]+\s|,\s|:\s")
LEAD_OPENER = re.compile(r"^\W*(?:(?:and|but|so|ok(?:ay)?|also|then|what about|how about)\b\W*)*", re.IGNORECASE)
# A lead that starts with one of these sets a circumstance ("in our house, what would that cost?"), not a topic.
CIRCUMSTANCE = frozenset("""
in on at for with about from by as if when since because after before during for without under over while
i we you it they he she my our your their his her this that these those one is are do does did can could
would will should how what which who why where i'm we're you're they're he's she's it's there's i've we've
i'd we'd let's please thanks
""".split())


def names_its_referent(question: str) -> bool:
    """A question whose pointing word refers to a topic it sets out itself, ahead of a break: a noun phrase
    with topic words of its own and nothing that points back, then the ask that points at it."""
    if re.search(r"[\u4e00-\u9fff]", question):
        return False
    lead_break = LEAD_BREAK.search(question)
    if lead_break is None:
        return False
    lead, ask = question[:lead_break.start()], question[lead_break.end():]
    lead = lead[LEAD_OPENER.match(lead).end():]
    first = re.findall(r"[\w'-]+", lead.lower())[:1]
    if not first or first[0] in CIRCUMSTANCE or may_point_back(lead):
        return False
    return bool(own_topic_words(lead)) and len(own_topic_words(ask)) < OWN_TOPIC_WORDS and may_point_back(ask)


PRONOUN_EN = re.compile(r"\b(it's|it|them|they)(?!['\w])", re.IGNORECASE)
PLURAL_PRONOUNS = frozenset({"they", "them"})
CONTRACTED = {"it's": " is"}  # the verb a contracted pronoun carries, kept after the topic that replaces it


def fill_pronoun(question: str, topic: str) -> str:
    """The question with its first pronoun ("it", "them", a pointing "that") replaced by the topic words."""
    if re.search(r"[\u4e00-\u9fff]", question):
        return re.sub(r"它们|它|这个|那个", topic, question, count=1)
    spans = [m.span(1) for m in PRONOUN_EN.finditer(question)
             if not has_plural_antecedent(question, m.start(1), m.group(1))]
    spans += pointing_spans(question)
    if not spans:
        return question
    start, end = min(spans)
    verb = CONTRACTED.get(question[start:end].lower(), "")
    return f"{question[:start]}{topic}{verb}{question[end:]}"


def has_plural_antecedent(question: str, start: int, pronoun: str) -> bool:
    """"they"/"them" after a plural noun of the same question stands for that noun ("what rules do the workers
    follow when they remove it?"), not for the conversation's topic."""
    if pronoun.lower() not in PLURAL_PRONOUNS:
        return False
    before = re.findall(r"[\w'-]+", question[:start].lower())
    return any(len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "'s", "us", "is"))
               and word not in STOP_EN and word not in ASK_WORDS for word in before)
