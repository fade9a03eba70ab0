"""The prompt: a base's system prompt, the recent turns, numbered passages with sources, the question.

The instructions ask for answers from the passages only, a ``[n]`` after each claim, and
a plain "I don't know" when the passages do not say; :func:`chat.pipeline.passages.citations_for`
maps the marks back to sources when the answer is done. Chitchat gets a short prompt
with no passages.
"""

from __future__ import annotations

from chat.pipeline.history import Turn
from chat.pipeline.passages import Passage

DEFAULT_SYSTEM_PROMPT = (
    "You are the customer-service assistant of this company. Answer the customer's question using only "
    "the numbered passages. After each sentence that uses a passage, cite it as [n]. If the passages do "
    "not contain the answer, say that you do not know and offer to connect the customer with a person. "
    "Be brief and polite, and answer in the language of the question."
)
CHITCHAT_SYSTEM_PROMPT = (
    "You are the friendly customer-service assistant of this company. Reply to small talk in one or two "
    "short sentences, and offer help with questions about the company's products and services."
)
PASSAGE_CHARS = 1200


def system_prompt_for(profile) -> str:
    custom = (getattr(profile, "system_prompt", "") or "").strip()
    return custom or DEFAULT_SYSTEM_PROMPT


def passages_block(passages: list[Passage]) -> str:
    blocks = []
    for passage in passages:
        text = passage.text if len(passage.text) <= PASSAGE_CHARS else passage.text[:PASSAGE_CHARS] + "…"
        blocks.append(f"[{passage.n}] ({passage.source})\n{text}")
    return "\n\n".join(blocks)


def history_messages(turns: list[Turn]) -> list[dict]:
    return [{"role": turn.role, "content": turn.text} for turn in turns]


def answer_messages(*, question: str, passages: list[Passage], turns: list[Turn], system_prompt: str) -> list[dict]:
    """Chat-format messages for a knowledge answer."""
    user = (
        f"Passages:\n{passages_block(passages)}\n\n"
        f"Question: {question}\n"
        "Answer in one or two sentences from the passages above, and put the passage number in brackets, like [1], "
        "after each sentence."
    )
    return [{"role": "system", "content": system_prompt}, *history_messages(turns), {"role": "user", "content": user}]


def chitchat_messages(*, question: str, turns: list[Turn]) -> list[dict]:
    return [{"role": "system", "content": CHITCHAT_SYSTEM_PROMPT}, *history_messages(turns),
            {"role": "user", "content": question}]
