"""Stage 5, the decision: what to do with a question once its intent and hits are known.

- handoff → the conversation goes to the staff inbox and the customer is told;
- chitchat → a short generated reply without retrieval;
- a FAQ hit whose similarity clears the base's threshold (and is not a near-tie with a
  different answer) → that answer directly: precision first, a wrong direct answer is
  the worst failure;
- out_of_scope (unless the base clearly covers the question), or no passage above the
  relevance floor → a polite "I don't know" with an offer to hand off, no generation;
- otherwise → generation over the relevant passages, or an extract of them in
  extractive mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.pipeline.intent import Intent
from chat.pipeline.passages import Passage, hit_relevance, passage_of

HANDOFF, CHITCHAT, DIRECT, REFUSE, GENERATE, EXTRACT = "handoff", "chitchat", "direct", "refuse", "generate", "extract"
# A second FAQ entry this close to the best one, with another answer, makes a direct answer a guess.
DIRECT_TIE_MARGIN = 0.02
MAX_PASSAGES = 5


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str = ""
    faq_hit: object | None = None  # kb.search.Hit, for direct answers
    passages: list[Passage] = field(default_factory=list)


def needs_retrieval(intent: Intent) -> bool:
    return intent.label not in ("handoff", "chitchat")


def best_faq_hit(hits: list) -> tuple[object | None, object | None]:
    faq = sorted((h for h in hits if h.is_faq and h.similarity is not None), key=lambda h: -h.similarity)
    return (faq[0] if faq else None), (faq[1] if len(faq) > 1 else None)


def direct_candidate(hits: list, *, threshold: float):
    best, second = best_faq_hit(hits)
    if best is None or best.similarity < threshold:
        return None
    if (second is not None and best.similarity - second.similarity < DIRECT_TIE_MARGIN
            and second.faq_answer.strip() != best.faq_answer.strip()):
        return None
    return best


def answer_decide(*, intent: Intent, hits: list, direct_threshold: float, relevance_floor: float,
                  extractive: bool) -> Decision:
    """The entry point: one decision from the intent, the hits and the base's settings."""
    if intent.label == "handoff":
        return Decision(HANDOFF, "requested" if intent.explicit else "intent")
    if intent.label == "chitchat":
        return Decision(CHITCHAT)
    direct = direct_candidate(hits, threshold=direct_threshold)
    if intent.label == "out_of_scope" and direct is None:
        return Decision(REFUSE, "out_of_scope")
    if direct is not None:
        return Decision(DIRECT, faq_hit=direct)
    relevant = [hit for hit in hits if hit_relevance(hit) >= relevance_floor][:MAX_PASSAGES]
    if not relevant:
        return Decision(REFUSE, "no_relevant_passage")
    passages = [passage_of(hit, n) for n, hit in enumerate(relevant, 1)]
    return Decision(EXTRACT if extractive else GENERATE, passages=passages)
