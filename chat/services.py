"""Writes of the chat app: answering a message, finishing a generated answer, feedback, hand-off.

:func:`message_answer` runs the pipeline for one guarded question — answer cache, intent,
retrieval, decision — and stores the question and its reply in one transaction: a
reply that is known at once (cached, direct, extractive, refused, handed off) is stored
complete; a generated one is stored ``pending`` with its inference job id and finished by
:func:`message_finalize` from the job's ``done``/``error`` event. The view validated the
request first, so nothing is stored half-way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import generation
from chat import metrics as chat_metrics
from chat.live import STAFF_REPLY_REASON
from chat.models import ChatProfile, Conversation, Feedback, Message, WidgetKey
from chat.pipeline import (
    answerability,
    attribution,
    decide,
    extractive,
    guard,
    history,
    intent,
    language,
    output_gate,
    passages,
    prompt,
    replies,
    reply_filter,
    sentence_vectors,
)
from chat.pipeline import cache as answer_cache
from chat.selectors import chat_profile_of, relevance_floor_of
from inference.outcomes import GenerationDone, GenerationError, GenerationOutcome, outcome_from
from kb.demo import DEMO_SLUG, DEMO_ZH_SLUG
from kb.embedding import embed_query, knowledge_base_model
from kb.models import KnowledgeBase
from kb.search import best_similarity, glossed, hybrid, spelled

log = logging.getLogger(__name__)
Outcome = Message.Outcome
GENERATION_REJECTED = "generation_rejected"  # the reason of a generated reply the output gate replaced


@dataclass(frozen=True)
class AnswerStarted:
    """What the POST returns: the reply to stream and the conversation it belongs to."""

    message_id: str
    conversation_id: str
    outcome: str
    reply: Message | None = None  # the stored reply when it is final already (the POST carries it whole)


@dataclass(frozen=True)
class Reply:
    """A reply decided by the pipeline, before it is stored."""

    outcome: str
    text: str = ""
    reason: str = ""
    citations: tuple = ()
    generation_messages: tuple = ()
    max_new_tokens: int = 0
    passages: tuple = ()
    served_from_id: object = None
    cacheable: bool = False
    answerability: float | None = None  # probability the base answers (None: not scored, or no model yet)
    suggestions: tuple = ()  # with an "I don't know": the base's FAQ questions closest to the question


def elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


def embed_question(text: str, *, kb):
    """The question's vector by the base's own embedding model (its index, FAQ and cache vectors use it)."""
    # sentence-transformers, loaded once per process
    return embed_query(text, model=knowledge_base_model(kb))


# A follow-up's vector: its rewritten query's, plus this share of the bare question's. The history fills in
# the topic, the question's own words keep the ask ("is that deductible?" after a roof's cost is about the
# deduction). Dialogue sets, extractive: own 43/48 at 0 and 0.5, 40/48 at 1.0; held-out 32/40 → 37/40 at 0.5.
FOLLOW_UP_ASK_WEIGHT = 0.5


def standalone_vector(standalone, *, question: str, kb):
    """The vector the cache, intent and retrieval of one message share: the question's, or for a follow-up
    the rewritten query's blended with the bare question's (one more encoder pass, follow-ups only)."""
    vector = embed_question(standalone.query, kb=kb)
    if not standalone.depends_on_history or standalone.query == question:
        return vector
    return follow_up_blend(vector, embed_question(question, kb=kb))


def follow_up_blend(rewritten: np.ndarray, bare: np.ndarray) -> np.ndarray:
    """A follow-up's unit vector: its rewritten query's plus FOLLOW_UP_ASK_WEIGHT of the bare question's."""
    blended = rewritten + FOLLOW_UP_ASK_WEIGHT * bare
    return blended / max(float(np.linalg.norm(blended)), 1e-12)


def sentence_embedder(kb):
    """Sentence vectors by the base's own model: the extract compares them with the question's vector."""
    # Remembered per process: the answerability stage embedded the same sentences just before.
    return partial(sentence_vectors.sentence_vectors, model=knowledge_base_model(kb))


def search_hits(kb, query: str, query_vector=None, *, ask: str = "") -> list:
    return hybrid(kb, query, kb.top_k, query_vector=query_vector, ask=ask)


class StageClock:
    """Milliseconds spent per pipeline stage of one message (stored in the answer's ``timings["stages"]``).

    The POST's time is spread over the guard, the cache, one embedding, intent, retrieval and the
    writes; knowing which stage a slow answer spent it in is what the latency bench reads.
    """

    def __init__(self):
        self.stages: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Charge the time since the previous lap to ``stage`` (added up when a stage repeats)."""
        now = time.perf_counter()
        self.stages[stage] = round(self.stages.get(stage, 0.0) + (now - self.last) * 1000, 1)
        self.last = now


def recent_turns(conversation: Conversation | None) -> list[history.Turn]:
    """The conversation's finished turns that fit the history budget."""
    if conversation is None:
        return []
    rows = (conversation.messages.exclude(outcome=Outcome.PENDING).exclude(outcome=Outcome.FAILED)
            .order_by("-created_at").values_list("role", "text")[:20])
    turns = [history.Turn(role, text) for role, text in reversed(rows) if text]
    return history.history_window(turns, budget_tokens=settings.KEFU_CHAT_HISTORY_TOKENS)


@dataclass(frozen=True)
class Asked:
    """Stage 0: one question and what answering it needs — its base, profile, history and standalone form."""

    widget_key: WidgetKey
    conversation: Conversation | None
    text: str
    visitor_id: str
    kb: KnowledgeBase
    profile: ChatProfile
    turns: list
    standalone: history.Standalone
    index_version: int | None
    taken_from: Message | None = None  # the refusal whose offered question this is

    @property
    def cache_consulted(self) -> bool:
        """The answer cache serves only a question that stands alone, on an indexed base."""
        return self.index_version is not None and not self.standalone.depends_on_history


@dataclass(frozen=True)
class CacheLookup:
    """Stage 2's result: a cached reply, or a miss — and the question's vector if the lookup embedded it."""

    reply: Reply | None
    query_vector: np.ndarray | None


@dataclass(frozen=True)
class Answered:
    """The reply of stages 1–3, and what it was decided from (stored on the messages)."""

    reply: Reply
    query_vector: np.ndarray | None = None
    intent: intent.Intent | None = None


def message_answer(*, widget_key: WidgetKey, conversation: Conversation | None, text: str,
                   visitor_id: str = "", taken_from: Message | None = None) -> AnswerStarted:
    """Answer one guarded question: store it and its reply (complete, or pending on the generator).
    ``taken_from``: the refusal that offered this question, when the customer took it (:func:`offer_taken`).

    One function per stage: the question's context → the sensitive-word guard → the answer cache
    (exact, then semantic) → intent, retrieval and the decision → one transaction storing both messages.
    """
    started = time.perf_counter()
    clock = StageClock()
    asked = question_context(widget_key=widget_key, conversation=conversation, text=text, visitor_id=visitor_id)
    asked = replace(asked, taken_from=taken_from)
    clock.lap("context")
    answered = guarded_answer(asked)
    if answered is None:
        looked = cache_lookup(asked, clock)
        answered = (Answered(looked.reply, looked.query_vector) if looked.reply is not None
                    else pipeline_answer(asked, looked.query_vector, clock))
    answer = answer_store(asked, answered, clock=clock, started=started)
    chat_metrics.answer_count(knowledge_base=asked.kb.slug, outcome=answer.outcome)
    return AnswerStarted(str(answer.pk), answer.conversation.public_id, answer.outcome,
                         reply=answer if answer.outcome != Outcome.PENDING else None)


def question_context(*, widget_key: WidgetKey, conversation: Conversation | None, text: str,
                     visitor_id: str) -> Asked:
    """Stage 0: the base, its chat profile, the recent turns and the standalone form of the question."""
    kb = widget_key.knowledge_base
    turns = recent_turns(conversation)
    return Asked(widget_key=widget_key, conversation=conversation, text=text, visitor_id=visitor_id, kb=kb,
                 profile=chat_profile_of(kb), turns=turns, standalone=standalone_of(kb, text, turns),
                 index_version=kb.active_index_id)


def standalone_of(kb, text: str, turns: list[history.Turn]) -> history.Standalone:
    """The question as the rest of the pipeline reads it: misspelled words corrected to the base's own
    ("insulaton" → "insulation", :mod:`kb.retrieval.spelling`), its terms glossed as the base explains them
    ("servitut (easement)", :mod:`kb.retrieval.glossary`), then made standalone from the history."""
    standalone = history.standalone_question(spelled(kb.pk, kb.active_index_id, text).text, turns)
    standalone = glossed_reading(kb, standalone)
    return closer_reading(kb, standalone, question=text) if standalone.alternative is not None else standalone


def glossed_reading(kb, standalone: history.Standalone) -> history.Standalone:
    """Both readings of a question with the base's terms glossed — after the history filled in its topic, so
    "can it be removed?" after "what is a servitut?" is searched as "can servitut (easement) be removed?"."""
    query = glossed(kb.pk, kb.active_index_id, standalone.query, revision=kb.glossary_revision)
    alternative = standalone.alternative and glossed_reading(kb, standalone.alternative)
    return replace(standalone, query=query, alternative=alternative)


# A question that may point back is read with the conversation's topic only when that reading matches the base
# at least this much better (best dense cosine) than the question alone.
READING_MARGIN = 0.0


def closer_reading(kb, standalone: history.Standalone, *, question: str) -> history.Standalone:
    """Of a question's two readings — alone, and with the conversation's topic filled in — the one the base
    matches better: "do the people doing it need a certification?" after a roof's cost matches the roofers'
    qualification with the roof filled in; "…error E24, how do I fix it?" matches best as asked."""
    contextual = standalone.alternative
    alone_vector = embed_question(standalone.query, kb=kb)
    bare = alone_vector if standalone.query == question else embed_question(question, kb=kb)
    along_vector = follow_up_blend(embed_question(contextual.query, kb=kb), bare)  # as standalone_vector has it
    alone = best_similarity(kb, standalone.query, alone_vector)
    along = best_similarity(kb, contextual.query, along_vector)
    return contextual if along > alone + READING_MARGIN else replace(standalone, alternative=None)


def guarded_answer(asked: Asked) -> Answered | None:
    """Stage 1: a question holding one of the base's sensitive words is refused before anything is computed."""
    if not guard.sensitive_matcher(tuple(asked.profile.sensitive_word_list)).contains(asked.text):
        return None
    return Answered(Reply(Outcome.REFUSED, replies.reply("sensitive_word", question=asked.text),
                          reason="sensitive_word"))


def cache_lookup(asked: Asked, clock: StageClock) -> CacheLookup:
    """Stage 2: the answer cache. The exact lookup needs no embedding, so it runs first; on a miss the question is
    embedded — the one embedding of a message, which the semantic lookup, intent and retrieval all reuse."""
    common = {"kb_id": asked.kb.pk, "index_version": asked.index_version, "question": asked.text,
              "standalone": asked.standalone, "profile": asked.profile}
    reply = cached_reply(query_vector=None, **common)
    clock.lap("cache")
    query_vector = None
    if reply is None:
        query_vector = standalone_vector(asked.standalone, question=asked.text, kb=asked.kb)
        clock.lap("embed")
        reply = cached_reply(query_vector=query_vector, exact_checked=True, **common)
        clock.lap("cache")
    if asked.cache_consulted:
        chat_metrics.cache_lookup_count(knowledge_base=asked.kb.slug, result=reply.reason if reply else "miss")
    return CacheLookup(reply, query_vector)


def pipeline_answer(asked: Asked, query_vector: np.ndarray, clock: StageClock) -> Answered:
    """Stage 3: intent, then retrieval and the decision (and the extract, in extractive mode)."""
    found_intent = intent.intent_classify(text=asked.standalone.query, query_vector=query_vector, kb_id=asked.kb.pk,
                                          index_version=asked.index_version)
    clock.lap("intent")
    reply = pipeline_reply(kb=asked.kb, profile=asked.profile, question=asked.text, standalone=asked.standalone,
                           found_intent=found_intent, query_vector=query_vector, turns=asked.turns, clock=clock)
    clock.lap("decide")
    return Answered(reply, query_vector, found_intent)


def answer_store(asked: Asked, answered: Answered, *, clock: StageClock, started: float) -> Message:
    """Stage 4: the question and its reply in one transaction (a generated reply starts its job in it), the
    conversation's state, and the answer cache. Returns the stored assistant message."""
    reply, found_intent = answered.reply, answered.intent
    question_language = language.detect_language(asked.text)  # before the write lock: lingua loads once (~45 ms)
    with transaction.atomic():
        is_new = asked.conversation is None
        conversation = asked.conversation or Conversation.objects.create(
            knowledge_base=asked.kb, widget_key=asked.widget_key, visitor_id=asked.visitor_id[:64])
        question = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, text=asked.text, language=question_language,
            normalized_text=answer_cache.cache_form(asked.text), outcome=reply.outcome, reason=reply.reason,
            intent=found_intent.label if found_intent else "",
            intent_confidence=found_intent.confidence if found_intent else None,
            standalone_query=asked.standalone.query if asked.standalone.depends_on_history else "",
            taken_from=asked.taken_from,
        )
        # Built in memory first (its uuid is known), so the generation job can name it and the row is
        # written once, complete — each statement is a turn of SQLite's single write lock. (Not one INSERT with
        # the question: created_at is stamped per row and the two could tie, which would blur their order.)
        answer = Message(
            conversation=conversation, role=Message.Role.ASSISTANT, reply_to=question, text=reply.text,
            outcome=reply.outcome, reason=reply.reason, intent=question.intent,
            intent_confidence=question.intent_confidence, citations=list(reply.citations),
            passages=list(reply.passages), index_version=asked.index_version, served_from_id=reply.served_from_id,
            answerability=reply.answerability, suggestions=list(reply.suggestions),
        )
        if reply.generation_messages:
            answer.history_in_prompt = history_in_prompt(reply.generation_messages)
            answer.inference_job_id = generation.generation_start(
                messages=list(reply.generation_messages), max_new_tokens=reply.max_new_tokens,
                message_id=str(answer.pk))
        clock.lap("store")
        pipeline_ms = elapsed_ms(started)
        answer.timings = {"pipeline_ms": pipeline_ms, "stages": clock.stages}
        if answer.outcome != Outcome.PENDING:
            answer.timings["total_ms"] = pipeline_ms
            answer.completed_at = timezone.now()
        answer.save(force_insert=True)
        if reply.outcome == Outcome.HANDED_OFF and conversation.status != Conversation.Status.HANDED_OFF:
            conversation_handoff(conversation=conversation)  # stamps updated_at too
        elif not is_new:
            Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
        if reply.cacheable and asked.cache_consulted:
            answer_cache.answer_cache_store(message=answer, question=asked.text, query_vector=answered.query_vector,
                                            kb_id=asked.kb.pk, index_version=asked.index_version)
    return answer


def cached_reply(*, kb_id: int, index_version, question: str, query_vector, standalone, profile,
                 exact_checked: bool = False) -> Reply | None:
    """A cached answer for this base and index version, unless the question leans on history.

    Without ``query_vector`` only the exact lookup runs; with it (and ``exact_checked``) only the semantic one.
    The answer is masked with the base's output matcher as it is served: words listed after it was cached,
    and answers cached before replies were masked, never reach a customer.
    """
    if index_version is None or standalone.depends_on_history:
        return None
    hit = answer_cache.answer_cache_lookup(kb_id=kb_id, index_version=index_version, question=question,
                                           query_vector=query_vector, exact=not exact_checked)
    if hit is None:
        return None
    return masked_reply(Reply(Outcome.CACHED, hit.answer, reason=hit.kind, citations=tuple(hit.citations),
                              served_from_id=hit.source_message_id), guard.output_matcher(profile))


def pipeline_reply(*, kb, profile, question: str, standalone, found_intent, query_vector, turns,
                   clock: StageClock | None = None) -> Reply:
    """Retrieve when the intent needs it, decide, and turn the decision into a reply."""
    needed = decide.needs_retrieval(found_intent, question)
    follow_up_ask = question if standalone.depends_on_history and standalone.query != question else ""
    hits = search_hits(kb, standalone.query, query_vector, ask=follow_up_ask) if needed else []
    if clock is not None:
        clock.lap("retrieve")
    # Scored only when the decision asks (it embeds the top passages' sentences): a direct answer never does.
    score = answerability.LazyScore(partial(answerability.answerability_score, kb=kb, hits=hits,
                                            intent=found_intent, query=standalone.query,
                                            query_vector=query_vector)) if needed else None
    decision = decide.answer_decide(
        intent=found_intent, hits=hits, direct_threshold=kb.direct_answer_threshold,
        relevance_floor=relevance_floor_of(profile), extractive=profile.answer_mode == profile.AnswerMode.EXTRACTIVE,
        question=question, answerability=score,
    )
    reply = decision_reply(decision=decision, kb=kb, profile=profile, question=question, query=standalone.query,
                           query_vector=query_vector, turns=turns)
    probability = score.probability if score is not None else None
    return replace(reply, answerability=probability, suggestions=offered_questions(reply, hits, probability))


def offered_questions(reply: Reply, hits: list, probability: float | None) -> tuple[str, ...]:
    """The FAQ questions a refusal offers instead — and those a generation holds for the case that the model
    cannot answer (the finaliser keeps them only then)."""
    refused = reply.outcome == Outcome.REFUSED and reply.reason in decide.RELATED_REASONS
    if not (refused or reply.outcome == Outcome.PENDING):
        return ()
    return decide.related_questions(hits, probability=probability)


def masked_reply(reply: Reply, matcher: guard.SensitiveMatcher) -> Reply:
    """``reply`` with the base's output words masked in its text (a generation request has none yet)."""
    text = matcher.mask(reply.text) if reply.text else reply.text
    return reply if text == reply.text else replace(reply, text=text)


def decision_reply(*, decision: decide.Decision, kb, profile, question: str, query_vector, turns,
                   query: str = "") -> Reply:
    """The reply a decision makes, masked with the base's output matcher like generated text: Kefu's own words,
    a direct, suggested or extracted answer (a FAQ or a document may hold a listed word, or the custom prompt's
    words), or a generation request (masked as it streams)."""
    reply = decided_reply(decision=decision, kb=kb, profile=profile, question=question, query_vector=query_vector,
                          turns=turns, query=query)
    return masked_reply(reply, guard.output_matcher(profile))


def decided_reply(*, decision: decide.Decision, kb, profile, question: str, query_vector, turns,
                  query: str = "") -> Reply:
    """The reply a decision makes: Kefu's own words, a direct or extracted answer, or a generation request.
    ``question`` as asked (replies answer in its language); ``query`` as searched (the extract weighs its words)."""
    if decision.action == decide.HANDOFF:
        return Reply(Outcome.HANDED_OFF, replies.reply("handoff", question=question), reason=decision.reason)
    if decision.action == decide.REFUSE:
        return Reply(Outcome.REFUSED, replies.reply(refusal_kind(decision.reason), question=question),
                     reason=decision.reason)
    if decision.action == decide.SMALLTALK:  # Kefu's own words: no generator output on an extractive base
        return Reply(Outcome.ANSWERED, replies.reply(decision.reason, question=question), reason="smalltalk")
    if decision.action == decide.DIRECT:
        hit = decision.faq_hit
        citation = passages.citation_of(passages.passage_of(hit, 1))
        return Reply(Outcome.DIRECT, hit.faq_answer, reason="faq", citations=(citation.as_dict(),), cacheable=True)
    if decision.action == decide.SUGGEST:
        passage = next(p for p in decision.passages if p.faq_entry_id == decision.faq_hit.faq_entry_id)
        text = replies.suggestion(question=question, faq_question=decision.faq_hit.faq_question,
                                  faq_answer=decision.faq_hit.faq_answer, n=passage.n)
        return Reply(Outcome.ANSWERED, text, reason="faq_suggested",
                     citations=(passages.citation_of(passage).as_dict(),), cacheable=True)
    if decision.action == decide.EXTRACT:
        extract = extractive.extractive_answer(question_vector=query_vector, passages=decision.passages,
                                               embed=sentence_embedder(kb), question=query or question)
        if extract is None:
            return Reply(Outcome.REFUSED, replies.reply("dont_know", question=question), reason="no_relevant_sentence")
        return Reply(Outcome.ANSWERED, extract.text, reason="extractive",
                     citations=tuple(c.as_dict() for c in extract.citations), cacheable=True)
    if decision.action == decide.CHITCHAT:
        messages = prompt.chitchat_messages(question=question, turns=turns)
        return Reply(Outcome.PENDING, reason="chitchat", generation_messages=tuple(messages),
                     max_new_tokens=settings.KEFU_CHAT_CHITCHAT_TOKENS)
    if not extractive.has_support(question_vector=query_vector, passages=decision.passages,
                                  embed=sentence_embedder(kb)):
        return Reply(Outcome.REFUSED, replies.reply("dont_know", question=question), reason="no_relevant_sentence")
    messages = prompt.answer_messages(question=question, passages=decision.passages, turns=turns,
                                      system_prompt=prompt.system_prompt_for(profile))
    return Reply(Outcome.PENDING, reason="generated", generation_messages=tuple(messages),
                 max_new_tokens=settings.KEFU_CHAT_ANSWER_TOKENS,
                 passages=tuple(p.as_dict() for p in decision.passages))


def refusal_kind(reason: str) -> str:
    """Which of Kefu's own texts a refusal gets: the scope message for requests outside any base."""
    return "scope" if reason in ("out_of_scope", "task_request") else "dont_know"


def message_finalize(*, message: Message, event) -> Message:
    """Finish a pending assistant message from its job's final stream event (idempotent).

    ``done``: the answer (sensitive words masked), its citations, token counts and timings;
    a cited knowledge answer also enters the answer cache unless history was in its prompt. An
    answer the output gate rejects becomes Kefu's refusal (reason ``generation_rejected``) — the
    ``done`` event carries it, so the stream ends on what is stored. ``error``: failed, with the code.
    """
    if message.outcome != Outcome.PENDING:
        return message
    outcome = outcome_from(event.kind, event.data) or GenerationError("generation_failed")
    now = timezone.now()
    timings = dict(message.timings)
    timings["total_ms"] = since_post_ms(message, now)
    answered = isinstance(outcome, GenerationDone) and outcome.answered
    verdict = output_gate.PASS
    if answered:  # filtered as the stream was, gated and cited before the row is locked (attribution embeds)
        found = [passages.passage_from_dict(p) for p in message.passages]
        finished = reply_filter.finished_text(outcome.text or "", **reply_filter_args(message, found))
        verdict = finished.verdict
        text, cited = attribution.cite_answer(finished.text, found)
    with transaction.atomic():
        locked = (Message.objects.select_for_update(of=("self",))
                  .select_related("conversation__knowledge_base", "reply_to").get(pk=message.pk))
        if locked.outcome != Outcome.PENDING:
            return locked
        if answered:
            locked.prompt_tokens = outcome.prompt_tokens
            locked.completion_tokens = outcome.completion_tokens
            timings.update({name: getattr(outcome, name) for name in ("queue_ms", "ttft_ms", "tokens_per_s")
                            if getattr(outcome, name) is not None})
        if answered and not verdict.passed:  # the output gate: Kefu's refusal, with the offer of a person
            locked.text = replies.reply("dont_know", question=locked.reply_to.text if locked.reply_to else "")
            locked.citations, locked.outcome, locked.reason = [], Outcome.REFUSED, GENERATION_REJECTED
        elif answered and locked.passages and not cited and replies.says_dont_know(text):  # Kefu's own words, with the offer of a person
            question = locked.reply_to.text if locked.reply_to else text
            locked.text, locked.citations = replies.reply("dont_know", question=question), []
            locked.outcome, locked.reason = Outcome.REFUSED, "model_dont_know"
        elif answered:
            locked.text = text
            locked.citations = [c.as_dict() for c in cited]
            locked.outcome, locked.suggestions = Outcome.ANSWERED, []
        else:
            locked.suggestions = []
            locked.outcome = Outcome.FAILED
            locked.error_code = failure_code(outcome)[:64]
            locked.text = replies.reply("failed", question=locked.reply_to.text if locked.reply_to else "")
        locked.timings = timings
        locked.completed_at = now
        locked.save()
        if locked.reply_to_id:
            # The question carries its reply's outcome and reason (the knowledge-gap list groups by them).
            Message.objects.filter(pk=locked.reply_to_id).update(outcome=locked.outcome, reason=locked.reason)
        if locked.outcome == Outcome.ANSWERED and locked.citations and locked.reply_to:
            answer_cache_add(message=locked)
    chat_metrics.answer_count(knowledge_base=locked.conversation.knowledge_base.slug, outcome=locked.outcome)
    if locked.reason == GENERATION_REJECTED:
        log.info("generated reply %s rejected by the output gate: %s (%s)", locked.pk, verdict.check, verdict.detail)
        chat_metrics.generation_rejected_count(knowledge_base=locked.conversation.knowledge_base.slug,
                                               check=verdict.check)
    return locked


def failure_code(outcome: GenerationOutcome) -> str:
    """Why a generation gave no answer: the error's code, or how a ``done`` without one finished."""
    if isinstance(outcome, GenerationError):
        return outcome.code or "generation_failed"
    return outcome.finish_reason or "generation_failed"


def reply_filter_args(message: Message, found: list) -> dict:
    """What the filter of one generated reply needs: the base's output words, its passages, its question."""
    profile = chat_profile_of(message.conversation.knowledge_base)
    return {"matcher": guard.output_matcher(profile), "passages": found,
            "question": message.reply_to.text if message.reply_to_id else "",
            "hold_chars": settings.KEFU_CHAT_GATE_HOLD_CHARS}


def stream_filter_for(message: Message) -> reply_filter.ReplyFilter:
    """The filter the SSE relay passes this message's tokens through (the same one :func:`message_finalize` uses)."""
    found = [passages.passage_from_dict(p) for p in message.passages]
    return reply_filter.ReplyFilter(**reply_filter_args(message, found))


def history_in_prompt(messages) -> bool:
    """The generation prompt holds earlier turns of the conversation, not only the system prompt and the question."""
    return sum(1 for m in messages if m["role"] != "system") > 1


def answer_cache_add(*, message: Message) -> None:
    """Put a finished generated answer in the cache, unless it leaned on history (its question or its prompt)."""
    question = message.reply_to
    if question.standalone_query or message.history_in_prompt or message.index_version is None:
        return
    answer_cache.answer_cache_store(message=message, question=question.text,
                                    query_vector=embed_question(question.text,
                                                                kb=message.conversation.knowledge_base),
                                    kb_id=message.conversation.knowledge_base_id, index_version=message.index_version)


def since_post_ms(message: Message, now) -> float:
    """Milliseconds since the POST: the pipeline ran before the row was written."""
    stored_after_ms = (now - message.created_at).total_seconds() * 1000
    return round(message.timings.get("pipeline_ms", 0.0) + stored_after_ms, 1)


def message_first_token(*, message: Message) -> None:
    """Record POST-to-first-token time once, when the first token reaches a reader."""
    if "first_token_ms" in message.timings:
        return
    timings = dict(message.timings)
    timings["first_token_ms"] = since_post_ms(message, timezone.now())
    message.timings = timings
    Message.objects.filter(pk=message.pk, outcome=Outcome.PENDING).update(timings=timings)


def feedback_record(*, message: Message, rating: str, comment: str = "") -> Feedback:
    """One rating per assistant message (a second one replaces the first); down-rated answers leave the cache."""
    with transaction.atomic():
        feedback, _ = Feedback.objects.update_or_create(message=message,
                                                        defaults={"rating": rating, "comment": comment})
        if rating == Feedback.Rating.DOWN:
            answer_cache.answer_cache_evict(message=message)
            if message.served_from_id:
                answer_cache.answer_cache_evict(message=Message(pk=message.served_from_id))
    return feedback


def conversation_handoff(*, conversation: Conversation) -> Conversation:
    """Send the conversation to the staff inbox (idempotent)."""
    if conversation.status != Conversation.Status.HANDED_OFF:
        now = timezone.now()
        Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.HANDED_OFF,
                                                                handed_off_at=now, updated_at=now)
        conversation.status, conversation.handed_off_at = Conversation.Status.HANDED_OFF, now
    return conversation


def handoff_request(*, conversation: Conversation) -> AnswerStarted:
    """The customer pressed "talk to a person": hand off, and store the customer-facing notice as a reply.

    Idempotent once handed off: the request that moves the conversation out of ``open`` (a conditional
    update, so concurrent requests serialise on the row) stores the notice; any later one gets the existing
    notice back and stores nothing.
    """
    with transaction.atomic():
        now = timezone.now()
        claimed = Conversation.objects.filter(pk=conversation.pk, status=Conversation.Status.OPEN).update(
            status=Conversation.Status.HANDED_OFF, handed_off_at=now, updated_at=now)
        if claimed:
            conversation.status, conversation.handed_off_at = Conversation.Status.HANDED_OFF, now
        notice = None if claimed else (
            conversation.messages.filter(role=Message.Role.ASSISTANT, outcome=Outcome.HANDED_OFF)
            .exclude(reason=STAFF_REPLY_REASON).order_by("-created_at").first())
        if notice is None:  # handed off just now, or earlier without a notice (the status is left as it is)
            last_user_text = (conversation.messages.filter(role=Message.Role.USER).order_by("-created_at")
                              .values_list("text", flat=True).first() or "")
            notice = Message.objects.create(
                conversation=conversation, role=Message.Role.ASSISTANT,
                text=replies.reply("handoff", question=last_user_text), outcome=Outcome.HANDED_OFF,
                reason="requested", completed_at=now, timings={"total_ms": 0.0},
            )
    return AnswerStarted(str(notice.pk), conversation.public_id, notice.outcome, reply=notice)


# Generators too small to answer from passages reliably: a demo base on one of them answers extractively
# (answer_eval on the demo base: BENCHMARKS.md "Chat", reasoning in docs/DESIGN-NOTES.md).
SMALL_GENERATORS = frozenset({"smollm2-135m"})


def demo_answer_mode() -> str:
    """The answer mode a new demo base gets: extractive with the bundled CPU model, generative otherwise."""
    if settings.KEFU_MODEL in SMALL_GENERATORS:
        return ChatProfile.AnswerMode.EXTRACTIVE
    return ChatProfile.AnswerMode.GENERATIVE


def demo_profile_ensure(*, knowledge_base) -> str:
    """Give a demo base its chat profile (answer mode by :func:`demo_answer_mode`) unless it has one."""
    profile, created = ChatProfile.objects.get_or_create(knowledge_base=knowledge_base,
                                                         defaults={"answer_mode": demo_answer_mode()})
    state = "set" if created else "kept (already configured)"
    return f"Chat profile of the demo base {knowledge_base.slug} {state}: {profile.answer_mode} answers."


DEMO_KEY_NAME = "demo"


def demo_slugs() -> tuple[str, ...]:
    """The demo bases ``kb.demo`` sets up: the English one (/chat/demo/) and the Chinese one (/chat/demo/zh/)."""
    return DEMO_SLUG, DEMO_ZH_SLUG


def demo_widget_key(slug: str = "") -> WidgetKey | None:
    """A demo page's widget key: the enabled key ``demo_setup`` made for that demo base (default: the English
    one), or None.

    A read only: the page never creates a key, adds an origin or picks another base.
    """
    kb = demo_knowledge_base(slug)
    if kb is None:
        return None
    return (WidgetKey.objects.select_related("knowledge_base")
            .filter(knowledge_base=kb, name=DEMO_KEY_NAME, enabled=True).order_by("pk").first())


def demo_widget_key_ensure(*, knowledge_base, origins: list[str]) -> str:
    """``demo_setup``: a demo base's widget key, allowing ``origins`` (added to those it has); a summary line."""
    if knowledge_base.slug not in demo_slugs():
        raise ValueError(f"a demo widget key belongs to a demo base ({', '.join(demo_slugs())}), "
                         f"not {knowledge_base.slug}")
    wanted = [origin.rstrip("/") for origin in origins if origin.strip()]
    with transaction.atomic():
        key, created = WidgetKey.objects.select_for_update().get_or_create(
            knowledge_base=knowledge_base, name=DEMO_KEY_NAME, defaults={"allowed_origins": wanted})
        missing = [origin for origin in wanted if origin not in key.allowed_origins]
        if missing:
            key.allowed_origins = [*key.allowed_origins, *missing]
            key.save(update_fields=["allowed_origins"])
    state = "created" if created else "kept"
    return (f"Demo widget key of {knowledge_base.slug} {state}; allowed origins: "
            f"{', '.join(key.allowed_origins) or 'none'}.")


def demo_knowledge_base(slug: str = ""):
    """A demo base ``kb.demo`` sets up (``demo_setup``; default: the English one), once it is indexed; never
    another base."""
    slug = slug or demo_slugs()[0]
    if slug not in demo_slugs():
        return None
    return KnowledgeBase.objects.filter(slug=slug, active_index__isnull=False).first()


def message_reconcile(*, message: Message) -> Message:
    """Finish a pending generated message that no reader finished: from its stream's final event,
    or — when the stream has expired — from the inference job's stored outcome."""
    if message.outcome != Outcome.PENDING or not message.inference_job_id:
        return message
    final = generation.final_event(message.inference_job_id)
    return message_finalize(message=message, event=final) if final is not None else message
