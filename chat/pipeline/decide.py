"""Stage 5, the decision: what to do with a question once its intent and hits are known.

- handoff → the conversation goes to the staff inbox and the customer is told; a hand-off the intent
  stage only guessed, with little confidence, is searched first and handed off when nothing answers it,
  and one it guessed confidently yields to recognised small talk ("can you help me?" invites a question);
- a task no support desk takes on (translate, write a poem, code: :mod:`chat.pipeline.smalltalk`) →
  the scope message with the offer of a person, in every mode;
- small talk (greetings, thanks, goodbyes, "can you help me?", "who are you?") → Kefu's own short reply when the base
  answers extractively (its customers never see generator output), a short generated reply
  otherwise; whatever else the intent stage calls chit-chat is searched like a question;
- a FAQ hit whose similarity clears the base's threshold (and is not a near-tie with a
  different answer) → that answer directly: precision first, a wrong direct answer is
  the worst failure; never for a first-person statement without a question, which has asked
  nothing yet;
- out_of_scope (unless the base clearly covers the question), a probability that the base answers
  below the base's answerability threshold (:mod:`chat.pipeline.answerability`), or no passage above
  the relevance floor → a polite "I don't know" with an offer to hand off, no generation;
- otherwise → generation over the relevant passages; in extractive mode, the whole answer of a
  FAQ entry that is clearly the best match though under the direct threshold (introduced as a
  suggestion with its question), else an extract of the passages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from chat.pipeline import smalltalk
from chat.pipeline.answerability import Score
from chat.pipeline.intent import Intent
from chat.pipeline.passages import Passage, hit_relevance, passage_of

HANDOFF, CHITCHAT, DIRECT, REFUSE, GENERATE, EXTRACT = "handoff", "chitchat", "direct", "refuse", "generate", "extract"
SMALLTALK, SUGGEST = "smalltalk", "suggest"
# A second FAQ entry this close to the best one, with another answer, makes a direct answer a guess.
DIRECT_TIE_MARGIN = 0.02
MAX_PASSAGES = 5
BM25_TRUSTED_RANK = 1  # a hit BM25 ranks this high counts as relevant whatever its cosine
# A FAQ entry is "clearly the best match" when it is the first hit (or the first hit is its own document),
# its question is at least this close to the customer's, and the next entry with another answer trails
# it by SUGGEST_MARGIN. Demo base, shipped paraphrases: at 0.70 and above 53 of 56 suggestions name the right
# entry; between 0.60 and 0.70 only 7 of 14 do, so those get an extract instead.
SUGGEST_FLOOR = 0.7
SUGGEST_MARGIN = 0.05
# A hand-off the intent stage only guessed (no "talk to a person" words) below this confidence is searched
# first: "Where can I get help with Debian?" read as a hand-off, and the base answers it. When nothing
# answers it, the customer is handed off rather than told "I don't know".
HANDOFF_CONFIDENCE = 0.8
# An "I don't know" offers the base's FAQ questions at least this close to the question (query–question
# cosine), best first, at most MAX_RELATED — when the base might answer it after all: a probability (when scored)
# of at least RELATED_MIN_PROBABILITY. A customer whose wording the base missed gets one click back in. Demo base
# (tuned): near misses refused at 0.24–0.41 had their entry at 0.39–0.53 ("What kind of fuse box should my house
# have?" → "Which electrical panel should I have?", 0.49; "should I just go with the lowest offer?" → "Should I
# pick the cheapest quote?", 0.39); questions from elsewhere sat at 0.00–0.07 with look-alikes up to 0.46
# ("Which bank gives the best mortgage rate?" → "Which kitchen faucet is best?").
# Scope and sensitive-word refusals offer none.
RELATED_FLOOR = 0.38
RELATED_MIN_PROBABILITY = 0.15
MAX_RELATED = 3
RELATED_REASONS = frozenset({"unanswerable", "no_relevant_passage", "no_relevant_sentence"})


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str = ""
    faq_hit: object | None = None  # kb.search.Hit, for direct answers
    passages: list[Passage] = field(default_factory=list)


def certain_handoff(intent: Intent) -> bool:
    """An explicit request for a person, or a hand-off the intent stage is sure of."""
    return intent.label == "handoff" and (intent.explicit or intent.confidence >= HANDOFF_CONFIDENCE)


def needs_retrieval(intent: Intent, question: str = "") -> bool:
    """Retrieval is skipped for certain hand-offs, task requests and recognised small talk; whatever else
    the intent stage calls chit-chat is searched like a question and refused when nothing fits."""
    return (not certain_handoff(intent) and not smalltalk.is_task_request(question)
            and smalltalk.smalltalk_kind(question) is None)


# A customer telling what they are up to ("I'm thinking about replacing the roof") asked nothing yet: the
# FAQ entry closest to it answers some question they did not ask ("Can I replace it myself? Not
# recommended."), so it is never answered directly — at most offered with its question.
STATEMENT = re.compile(r"^\W*(i|i'm|im|i've|i'd|i'll|we|we're|we've|we'd|we'll|my|our)\b|^\W*(我|我们)(?!.*(吗|呢|什么|怎么|如何|多少|哪|几|是否|能否|可否))",
                       re.IGNORECASE)


def is_statement(question: str) -> bool:
    """A first-person statement without a question mark: the customer has not asked anything yet."""
    return bool(question) and "?" not in question and "？" not in question and bool(STATEMENT.search(question))


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


def suggest_candidate(hits: list):
    """The FAQ hit that is clearly the best match, under the direct threshold: first in the fused list (or
    its source document is), close to the question, well ahead of any entry with another answer."""
    best, second = best_faq_hit(hits)
    if best is None or best.similarity < SUGGEST_FLOOR or not hits:
        return None
    first = hits[0]
    if first.faq_entry_id != best.faq_entry_id and (first.document_id is None
                                                    or first.document_id != best.document_id):
        return None
    if (second is not None and best.similarity - second.similarity < SUGGEST_MARGIN
            and second.faq_answer.strip() != best.faq_answer.strip()):
        return None
    return best


def is_relevant(hit, relevance_floor: float, *, words_count: bool = False) -> bool:
    """Close enough to the question to build an answer on: the dense cosine (or FAQ similarity) reaches the
    floor — or, with ``words_count`` (the base's answerability model has judged the question answerable),
    BM25 ranks the hit first: the word evidence an embedder that does not know the question's language (the
    bundled English MiniLM for Chinese) cannot give. Without a fitted model the floor alone rules, since
    some word of almost any question matches some passage."""
    if hit_relevance(hit) >= relevance_floor:
        return True
    bm25 = hit.found_by.get("bm25") if hit.found_by else None
    return words_count and bm25 is not None and bm25.rank <= BM25_TRUSTED_RANK


def answer_decide(*, intent: Intent, hits: list, direct_threshold: float, relevance_floor: float,
                  extractive: bool, question: str = "",
                  answerability: Score | Callable[[], Score | None] | None = None) -> Decision:
    """The entry point: one decision from the intent, the hits and the base's settings.

    ``answerability``: the question's probability and the base's threshold (None while the base has
    no fitted model: the relevance floor and the support gate decide alone), or a function that computes
    it — called only when the decision needs it (a direct answer, small talk or a task request never does).
    """
    if certain_handoff(intent) and (intent.explicit or smalltalk.smalltalk_kind(question) is None):
        # a guessed hand-off yields to small talk: "can you help me?" invites a question, it asks for no person
        return Decision(HANDOFF, "requested" if intent.explicit else "intent")
    decision = question_decide(intent=intent, hits=hits, direct_threshold=direct_threshold,
                               relevance_floor=relevance_floor, extractive=extractive, question=question,
                               answerability=answerability)
    if intent.label == "handoff" and decision.action == REFUSE:  # a guessed hand-off the base cannot answer
        return Decision(HANDOFF, "intent")
    return decision


def question_decide(*, intent: Intent, hits: list, direct_threshold: float, relevance_floor: float,
                    extractive: bool, question: str,
                    answerability: Score | Callable[[], Score | None] | None) -> Decision:
    """Everything after the hand-off check: small talk, tasks, a direct answer, refusal or an answer."""
    if smalltalk.is_task_request(question):
        return Decision(REFUSE, "task_request")
    kind = smalltalk.smalltalk_kind(question)
    if kind is not None:  # Kefu's own reply where customers never see generator output
        return Decision(SMALLTALK, kind) if extractive else Decision(CHITCHAT, kind)
    direct = None if is_statement(question) else direct_candidate(hits, threshold=direct_threshold)
    # The intent's out_of_scope stands even beside a probability: the shipped out-of-base questions are
    # other businesses' customer questions, so the model never learned general-knowledge and task asks.
    if intent.label == "out_of_scope" and direct is None:
        return Decision(REFUSE, "out_of_scope")
    if direct is not None:
        return Decision(DIRECT, faq_hit=direct)
    score = answerability() if callable(answerability) else answerability
    if score is not None and not score.answerable:
        return Decision(REFUSE, "unanswerable")
    relevant = [hit for hit in hits if is_relevant(hit, relevance_floor, words_count=score is not None)]
    relevant = relevant[:MAX_PASSAGES]
    if not relevant:
        return Decision(REFUSE, "no_relevant_passage")
    passages = [passage_of(hit, n) for n, hit in enumerate(relevant, 1)]
    suggested = suggest_candidate(relevant) if extractive else None
    if suggested is not None:
        return Decision(SUGGEST, faq_hit=suggested, passages=passages)
    return Decision(EXTRACT if extractive else GENERATE, passages=passages)


def related_questions(hits: list, *, probability: float | None = None, floor: float = RELATED_FLOOR,
                      limit: int = MAX_RELATED) -> tuple[str, ...]:
    """The FAQ questions of ``hits`` whose similarity to the question reaches ``floor``: best first, each once —
    none when the question's answerability ``probability`` says it is from elsewhere."""
    if probability is not None and probability < RELATED_MIN_PROBABILITY:
        return ()
    faq = sorted((hit for hit in hits if hit.is_faq and hit.similarity is not None and hit.similarity >= floor),
                 key=lambda hit: -hit.similarity)
    questions: list[str] = []
    for hit in faq:
        question = hit.faq_question.strip()
        if question and question.casefold() not in {q.casefold() for q in questions}:
            questions.append(question)
    return tuple(questions[:limit])
