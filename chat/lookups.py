"""A web process's short-lived memory of rows every chat request reads: widget keys and chat profiles.

Every POST read its widget key (with its base) and its base's chat profile from the database: two of
the nine queries of a cached answer. They change rarely, so each process keeps them for
``KEFU_WEB_LOOKUP_TTL_S`` seconds (0: off). A save or delete of a key, a profile or a base in this
process — and an index activation or a change of a base's results under the same version (a glossary corrected,
fusion tuned) — forgets everything at once; another process's change is seen within the TTL (as its in-memory
search index is).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from chat.models import ChatProfile, WidgetKey
from kb.models import KnowledgeBase
from kb.signals import index_activated, retrieval_changed

T = TypeVar("T")
MAX_ENTRIES = 4096  # a flood of made-up keys cannot grow it without bound (misses are not kept)

_entries: dict[tuple[str, object], tuple[float, object]] = {}
_lock = threading.Lock()


def remembered(kind: str, key: object, load: Callable[[], T]) -> T:
    """``load()``'s value for ``(kind, key)``, from memory while it is younger than the TTL; None is not kept."""
    ttl = settings.KEFU_WEB_LOOKUP_TTL_S
    if ttl <= 0:
        return load()
    now = time.monotonic()
    with _lock:
        entry = _entries.get((kind, key))
    if entry is not None and entry[0] > now:
        return entry[1]
    value = load()
    if value is not None:
        with _lock:
            if len(_entries) >= MAX_ENTRIES:
                _entries.clear()
            _entries[(kind, key)] = (now + ttl, value)
    return value


def forget_all(**_kwargs) -> None:
    """Drop everything (a signal receiver: a key, a profile or a base changed)."""
    with _lock:
        _entries.clear()


def connect_signals() -> None:
    for model in (WidgetKey, ChatProfile, KnowledgeBase):
        post_save.connect(forget_all, sender=model, dispatch_uid=f"chat.lookups.save.{model.__name__}")
        post_delete.connect(forget_all, sender=model, dispatch_uid=f"chat.lookups.delete.{model.__name__}")
    index_activated.connect(forget_all, dispatch_uid="chat.lookups.index_activated")
    retrieval_changed.connect(forget_all, dispatch_uid="chat.lookups.retrieval_changed")
