"""Writes started from the staff pages; each goes through the owning app's service.

Analytics writes only its own rollup tables (:mod:`analytics.rollups`). A knowledge-gap
group becomes an FAQ entry through ``kb.services.faq_entry_create`` (its questions join the base's
evaluation set as confirmed cases, and a resolved thumbs-down does too: ``kb.services.eval_case_record``;
the entry rebuilds the
base's index on commit, so later questions are answered from it); inbox replies and
closing go through :mod:`chat.staff_replies`.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.rollups import RollupResult, rollup_refresh, rollup_watermark
from chat.models import Conversation
from chat.staff_replies import conversation_close, staff_reply_send
from kb.models import Document, FaqEntry, KnowledgeBase
from kb.services import eval_case_record, faq_entry_create, faq_phrasing_add

log = logging.getLogger(__name__)


class NotFound(LookupError):
    """The row a staff action names does not exist."""


def dashboard_rollups_refresh() -> list[RollupResult]:
    """Embedded mode has no beat: recompute the stale hours when a staff page is opened.

    At most once per ``KEFU_ANALYTICS_REFRESH_AFTER_S`` so paging through the dashboard stays fast.
    """
    if settings.KEFU_MODE != "embedded":
        return []
    watermark = rollup_watermark()
    if watermark and (timezone.now() - watermark).total_seconds() < settings.KEFU_ANALYTICS_REFRESH_AFTER_S:
        return []
    try:
        return rollup_refresh()
    except IntegrityError:
        # Another process (its own cache, so its own lock) wrote the same hours first; show what is there.
        log.warning("analytics rollup raced with another process; showing the rollups as they are")
        return []


def gap_faq_create(*, knowledge_base_id: int, question: str, answer: str, alternatives: list[str]):
    """Turn a knowledge-gap group into an FAQ entry of its base, indexed straight after."""
    knowledge_base = KnowledgeBase.objects.filter(pk=knowledge_base_id).first()
    if knowledge_base is None:
        raise NotFound(_("no such knowledge base"))
    with transaction.atomic():
        entry = faq_entry_create(knowledge_base=knowledge_base, question=question, answer=answer,
                                 alternatives=[a for a in alternatives if a.strip()], rebuild=True)
        for confirmed in entry.alternatives:  # the customers' own wordings, now confirmed by staff
            eval_case_record(knowledge_base=knowledge_base, question=confirmed, origin="gap", faq_entry=entry)
    return entry


RESOLVED_ORIGINS = frozenset({"feedback", "offer"})  # a down-rated answer, a taken offer


def feedback_resolve(*, knowledge_base_id: int, question: str, source: str, origin: str = "feedback"):
    """A down-rated question whose right source a staff member named — or a refused question whose offered
    question the customer took (``origin="offer"``), confirmed by staff — joins the base's evaluation set. When
    the source is an FAQ entry, the question also becomes one of its phrasings (as a knowledge gap's wordings
    do), so the next customer who asks it is answered from that entry instead of the wrong answer again.

    ``source`` is ``faq:<id>`` or ``doc:<id>`` (the form's choice); it must belong to the base.
    """
    if origin not in RESOLVED_ORIGINS:
        raise NotFound(_("unknown kind of confirmation"))
    knowledge_base = KnowledgeBase.objects.filter(pk=knowledge_base_id).first()
    if knowledge_base is None:
        raise NotFound(_("no such knowledge base"))
    kind, _sep, ref = source.partition(":")
    ref = ref.split()[0] if ref.split() else ""
    model = {"faq": FaqEntry, "doc": Document}.get(kind)
    row = model.objects.filter(pk=int(ref), knowledge_base=knowledge_base).first() if model and ref.isdigit() else None
    if row is None:
        raise NotFound(_("choose an FAQ entry or a document of this knowledge base as the right source"))
    with transaction.atomic():
        if kind == "faq":
            faq_phrasing_add(entry=row, phrasing=question)
        return eval_case_record(knowledge_base=knowledge_base, question=question, origin=origin,
                                faq_entry=row if kind == "faq" else None, document=row if kind == "doc" else None)


def conversation_of(conversation_id: str):
    conversation = Conversation.objects.filter(public_id=conversation_id).first()
    if conversation is None:
        raise NotFound(_("no such conversation"))
    return conversation


def inbox_reply(*, conversation_id: str, text: str):
    return staff_reply_send(conversation=conversation_of(conversation_id), text=text)


def inbox_close(*, conversation_id: str):
    return conversation_close(conversation=conversation_of(conversation_id))
