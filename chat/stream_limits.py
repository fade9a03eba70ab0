"""Caps on the SSE streams one client holds open, and the rate of its reads.

An open stream costs a coroutine, a socket and periodic reads; before these caps one client with one
conversation id could open hundreds of live-event streams, each holding a PostgreSQL connection, until
every customer got 503s (issue: "Hardening, round two"). Now streams hold no connection while they wait
(:func:`chat.db_slots.db_call`), and:

- a client (an IPv4 address or an IPv6 /64) holds at most ``KEFU_CHAT_STREAMS_PER_IP`` streams at once,
  message and live ones together, and a conversation at most ``KEFU_CHAT_LIVE_STREAMS_PER_CONVERSATION``
  live ones (a customer's tabs);
- GETs of the chat API (streams, history) count against ``KEFU_CHAT_READ_RATE_PER_IP`` per minute.

The counts live in the cache (Redis in service mode), so they hold across web processes; each expires
after ``COUNT_TTL_S`` so a process that dies mid-stream cannot leave a client locked out for long.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from chat.pipeline import guard

COUNT_TTL_S = 3600  # longer than any stream stays open (live streams end after chat.live.MAX_OPEN_S)


@dataclass(frozen=True)
class StreamSlot:
    """The counters one open stream holds; give them back with :func:`stream_slot_release`."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class StreamRefusal:
    """Why a stream was not opened: which cap is full (a closed set, also the metric's scope)."""

    scope: str  # "streams-ip" or "live-conversation"
    limit: int


def stream_slot_take(*, ip: str, conversation: str | None = None) -> StreamSlot | StreamRefusal:
    """One more open stream for this client (and, for a live stream, this conversation), unless a cap is full."""
    wanted = [("streams-ip", f"chat:streams:ip:{guard.rate_limit_client(ip)}", settings.KEFU_CHAT_STREAMS_PER_IP)]
    if conversation:
        wanted.append(("live-conversation", f"chat:streams:conversation:{conversation}",
                       settings.KEFU_CHAT_LIVE_STREAMS_PER_CONVERSATION))
    taken: list[str] = []
    for scope, key, limit in wanted:
        if counter_add(key) > limit:
            counter_sub(key)
            for earlier in taken:
                counter_sub(earlier)
            return StreamRefusal(scope, limit)
        taken.append(key)
    return StreamSlot(tuple(taken))


def stream_slot_release(slot: StreamSlot) -> None:
    for key in slot.keys:
        counter_sub(key)


def counter_add(key: str) -> int:
    if cache.add(key, 1, timeout=COUNT_TTL_S):
        return 1
    try:
        value = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=COUNT_TTL_S)
        return 1
    cache.touch(key, COUNT_TTL_S)
    return value


def counter_sub(key: str) -> None:
    try:
        if cache.decr(key) <= 0:
            cache.delete(key)
    except ValueError:  # expired meanwhile: nothing to give back
        pass


def read_rate_check(*, ip: str) -> guard.RateDecision:
    """One GET of the chat API by this client, against its per-minute budget of reads."""
    limit, window_s = settings.KEFU_CHAT_READ_RATE_LIMIT
    return guard.rate_limit_hit("read-ip", guard.rate_limit_client(ip), limit=limit, window_s=window_s)
