"""Multi-turn context: the last turns that fit a token budget, and follow-ups made standalone.

Retrieval, answerability, the extract and the cache see one question at a time, so a follow-up
such as "and how long does it take?" is rewritten into a standalone query when it leans on the
conversation (a pronoun or a connective at its start, or very short). The new ask comes first
and the history only fills in what it leaves out: the *topic words* of the previous question
(its content words, without question words, fillers like "I'm thinking about" and stop words)
are added after it, so "roughly what would that cost me?" after "I'm thinking about replacing
the roof" becomes "roughly what would that cost me? replacing roof" — the cost question about
the roof, not the roof question again. A question that does not lean on the conversation is a
topic switch and is left alone. A chain of follow-ups carries the topic of the question that
started it. No model is needed, which keeps the rewrite within the pipeline's latency budget;
in generative mode the generator still receives the real turns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that make a question lean on what was said before.
FOLLOW_UP_EN = re.compile(
    r"^(and|but|also|so|what about|how about|then|ok(ay)?,? (and|so|what)|is it|are they|does it|do they|can it)\b"
    r"|\b(it|its|it's|that|this|those|these|they|them|their|same)\b",
    re.IGNORECASE,
)
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
""".split())
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


def looks_like_follow_up(question: str) -> bool:
    if FOLLOW_UP_ZH.search(question):
        return True
    if FOLLOW_UP_EN.search(question):
        return True
    return len(question.split()) <= SHORT_QUESTION_WORDS and not re.search(r"[\u4e00-\u9fff]", question)


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


def standalone_question(question: str, turns: list[Turn]) -> Standalone:
    """The query to retrieve with: the question itself, or — for a follow-up — the question first, then
    the topic of the conversation's previous question (the topic it inherited, for a chain)."""
    users = [turn for turn in turns if turn.role == "user"]
    if not users or not looks_like_follow_up(question):
        return Standalone(question, False, topic_words(question))
    topic = standalone_question(users[-1].text, users[:-1][-3:]).topic
    if not topic or topic.lower() in question.lower():  # nothing to fill in
        return Standalone(question, False, topic_words(question))
    return Standalone(f"{question} {topic}", True, topic)
