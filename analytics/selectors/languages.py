"""The customers' language mix on the dashboard: questions of the window per detected language.

Read from the message table (the rollups carry no language): one grouped count over the user messages
of the window, bounded by the ``created_at`` index like the answerability histogram. The language is
the one :mod:`chat.pipeline.language` stored on each question.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from analytics.filters import DashboardFilter
from chat.models import Message

# Names of the languages the detector reports (chat.pipeline.language), in the staff member's language.
LANGUAGE_NAMES = {
    "zh": _("Chinese"), "en": _("English"), "ja": _("Japanese"), "ko": _("Korean"), "fr": _("French"),
    "de": _("German"), "es": _("Spanish"), "pt": _("Portuguese"), "it": _("Italian"), "nl": _("Dutch"),
    "sv": _("Swedish"), "ru": _("Russian"), "": _("not detected"),
}


@dataclass(frozen=True)
class LanguageShare:
    code: str  # ISO 639-1, "" for questions stored before detection
    name: str
    questions: int
    share: float  # of the window's questions, 0..1


def language_mix(flt: DashboardFilter) -> tuple[LanguageShare, ...]:
    """Questions of the window per language, the most asked language first."""
    questions = Message.objects.filter(role=Message.Role.USER, created_at__gte=flt.start, created_at__lt=flt.end)
    questions = flt.scoped(questions)
    counts = list(questions.order_by().values("language").annotate(n=Count("id")).values_list("language", "n"))
    total = sum(n for _code, n in counts)
    rows = sorted(counts, key=lambda row: (-row[1], row[0]))
    return tuple(LanguageShare(code, str(LANGUAGE_NAMES.get(code, code)), n, n / total) for code, n in rows)
