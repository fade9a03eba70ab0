"""Multi-turn context: the last turns that fit a token budget, and follow-ups made standalone.

Retrieval and the cache see one question at a time, so a follow-up such as "and how
long does it take?" is rewritten into a standalone query by prefixing the previous
user question when it leans on the conversation (a pronoun or a connective at its
start, or very short). No model is needed, which keeps the rewrite within the
pipeline's latency budget; the generator still receives the real turns.
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


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant"
    text: str


@dataclass(frozen=True)
class Standalone:
    query: str
    depends_on_history: bool


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


def standalone_question(question: str, turns: list[Turn]) -> Standalone:
    """The query to retrieve with: the question itself, or the previous question + this one."""
    previous = next((turn.text for turn in reversed(turns) if turn.role == "user"), "")
    if not previous or not looks_like_follow_up(question):
        return Standalone(question, False)
    return Standalone(f"{previous} {question}", True)
