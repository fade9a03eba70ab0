"""The dashboard's filters, parsed once from the query string into a frozen value.

Time ranges: ``24h`` / ``7d`` / ``30d`` end now; ``custom`` takes ``from`` and ``to`` dates
(YYYY-MM-DD, both days included, in the display time zone). ``kb`` and ``key`` are ids
(blank: all). Charts use hourly points up to two days, daily points beyond.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _

RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_RANGE = "7d"
MAX_CUSTOM_DAYS = 366
HOURLY_UP_TO = timedelta(days=2)


class FilterError(ValueError):
    """A filter value the dashboard cannot use; the message is shown with HTTP 400."""


@dataclass(frozen=True)
class DashboardFilter:
    start: datetime
    end: datetime
    range_name: str
    knowledge_base_id: int | None = None
    widget_key_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None

    @property
    def bucket(self) -> str:
        return "hour" if self.end - self.start <= HOURLY_UP_TO else "day"

    def scoped(self, rows, *, through: str = "conversation__"):
        """``rows`` limited to the filter's base and widget key, reached through ``through`` (the path to a model
        with ``knowledge_base`` and ``widget_key``: a message's conversation; blank for a rollup row itself)."""
        if self.knowledge_base_id:
            rows = rows.filter(**{f"{through}knowledge_base_id": self.knowledge_base_id})
        if self.widget_key_id:
            rows = rows.filter(**{f"{through}widget_key_id": self.widget_key_id})
        return rows

    def query_string(self) -> str:
        """The filters as a query string, for links that keep them."""
        params = {"range": self.range_name}
        if self.knowledge_base_id:
            params["kb"] = self.knowledge_base_id
        if self.widget_key_id:
            params["key"] = self.widget_key_id
        if self.range_name == "custom":
            params["from"], params["to"] = self.date_from.isoformat(), self.date_to.isoformat()
        return urlencode(params)


def optional_id(query: QueryDict, name: str) -> int | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise FilterError(_("%(name)s must be a numeric id") % {"name": name})
    return int(value)


def parse_day(query: QueryDict, name: str) -> date:
    try:
        return date.fromisoformat(query.get(name, "").strip())
    except ValueError as exc:
        raise FilterError(_("%(name)s must be a date like 2026-03-01") % {"name": name}) from exc


def dashboard_filter_parse(query: QueryDict, *, now: datetime | None = None) -> DashboardFilter:
    now = now or timezone.now()
    range_name = query.get("range", "") or DEFAULT_RANGE
    kb_id, key_id = optional_id(query, "kb"), optional_id(query, "key")
    if range_name in RANGES:
        return DashboardFilter(now - RANGES[range_name], now, range_name, kb_id, key_id)
    if range_name != "custom":
        raise FilterError(_("range must be one of %(ranges)s") % {"ranges": ", ".join([*RANGES, "custom"])})
    date_from, date_to = parse_day(query, "from"), parse_day(query, "to")
    if date_to < date_from:
        raise FilterError(_("the end date is before the start date"))
    if (date_to - date_from).days >= MAX_CUSTOM_DAYS:
        raise FilterError(_("a custom range is at most %(days)s days") % {"days": MAX_CUSTOM_DAYS})
    zone = timezone.get_current_timezone()
    start = datetime.combine(date_from, time.min, tzinfo=zone)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=zone)
    return DashboardFilter(start, end, "custom", kb_id, key_id, date_from, date_to)
