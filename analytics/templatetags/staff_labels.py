"""Template filters that turn the codes stored on chat rows (outcomes, statuses, roles) into words in the
staff member's language; an unknown code is shown as it is."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext_lazy as _

from analytics.selectors.languages import LANGUAGE_NAMES

register = template.Library()

LABELS = {
    # message outcomes (chat.models.Message.Outcome)
    "pending": _("pending"), "answered": _("generated"), "cached": _("from cache"), "direct": _("direct FAQ answer"),
    "handed_off": _("handed off"), "refused": _("refused"), "failed": _("failed"),
    # conversation statuses (chat.models.Conversation.Status)
    "open": _("open"), "closed": _("closed"),
    # transcript roles
    "user": _("customer"), "assistant": _("assistant"), "staff": _("staff"),
    # ratings and run statuses (kb tuning, documents)
    "up": _("thumbs up"), "down": _("thumbs down"), "queued": _("queued"), "running": _("running"),
    "processing": _("processing"), "ready": _("ready"), "done": _("done"), "rejected": _("rejected"),
    "parsing": _("parsing"), "embedding": _("embedding"), "indexing": _("indexing"), "building": _("building"),
    "held": _("held"),
}


@register.filter
def label(code: str) -> str:
    """The word for a stored code in the active language (``{{ line.outcome|label }}``)."""
    return str(LABELS.get(code, code)) if isinstance(code, str) else code


@register.filter
def language_name(code: str) -> str:
    """The name of a detected language in the active language (``{{ line.language|language_name }}``)."""
    return str(LANGUAGE_NAMES.get(code, code))
