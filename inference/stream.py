"""Token streams: how a generation's events travel from the engine to the web side.

One stream per job. The writer (the inference task) appends ``token`` events while
decoding and ends with exactly one ``done`` or ``error``; readers (the SSE view)
read after the last id they saw, so a reconnecting client resumes without gaps or
duplicates. Two implementations share the :class:`TokenStream` interface:

- :class:`RedisTokenStream` (service mode): a Redis Stream per job, ``XADD`` with an
  approximate ``MAXLEN`` and an ``EXPIRE`` refreshed on every write, so abandoned
  streams disappear by themselves.
- :class:`MemoryTokenStream` (embedded mode): the same in process memory, with a
  condition variable for blocking reads and the same expiry.

Ids have Redis's ``<ms>-<seq>`` form in both, and compare as integer pairs. The ``done`` and
``error`` payloads are the dataclasses of :mod:`inference.outcomes`. A reader that should also
notice a dead worker wraps its stream in :class:`ReapingStream` with a check from the services
(:func:`inference.services.generation_stream`): this module calls nobody above it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis
from django.conf import settings

from inference.config import engine_config
from inference.outcomes import GenerationDone, GenerationError, GenerationOutcome, outcome_from

TOKEN, DONE, ERROR = "token", GenerationDone.kind, GenerationError.kind
EVENT_KINDS = (TOKEN, DONE, ERROR)
KEY_PREFIX = "kefu:stream:"
START = "0-0"


@dataclass(frozen=True)
class StreamEvent:
    """One event of a token stream: ``token {text}``, ``done {...}`` or ``error {code, message}``."""

    id: str
    kind: str
    data: dict = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.kind in (DONE, ERROR)

    @property
    def outcome(self) -> GenerationOutcome | None:
        """The typed payload of a ``done`` or ``error`` event; None for a token."""
        return outcome_from(self.kind, self.data)


def parse_id(event_id: str) -> tuple[int, int]:
    """``"12-3"`` → (12, 3); a bare ``"12"`` means (12, 0), as in Redis."""
    ms, _, seq = str(event_id).partition("-")
    return int(ms), int(seq or 0)


class TokenStream(Protocol):
    """The events of one job, appended by one writer and read by any number of readers."""

    job_id: str

    def append(self, kind: str, data: dict) -> str:
        """Add an event; returns its id (greater than every earlier id)."""

    def read(self, after: str = START, *, block_ms: int = 0, count: int = 1000) -> list[StreamEvent]:
        """Events with an id greater than ``after``; waits up to ``block_ms`` when there are none."""

    def delete(self) -> None:
        """Drop the stream (tests, and jobs whose stream must not be replayed)."""


def check_kind(kind: str) -> None:
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown stream event kind {kind!r}; expected one of {EVENT_KINDS}")


def write_token(stream: TokenStream, text: str) -> str:
    return stream.append(TOKEN, {"text": text})


def write_done(stream: TokenStream, done: GenerationDone) -> str:
    return stream.append(DONE, done.data)


def write_error(stream: TokenStream, error: GenerationError) -> str:
    return stream.append(ERROR, error.data)


def read_all(stream: TokenStream, *, after: str = START, timeout_s: float = 30.0) -> list[StreamEvent]:
    """Every event until the final one (or the timeout): what a patient reader sees."""
    events: list[StreamEvent] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = stream.read(after, block_ms=200)
        events.extend(batch)
        if batch:
            after = batch[-1].id
            if batch[-1].is_final:
                break
    return events


# --- Redis ------------------------------------------------------------------------------

MAX_BLOCK_MS = 10_000  # below redis_client's socket timeout (30 s)


class RedisTokenStream:
    """A job's events in a Redis Stream (service mode)."""

    def __init__(self, job_id: str, client, *, maxlen: int = 4096, ttl_s: int = 3600):
        self.job_id = str(job_id)
        self.key = KEY_PREFIX + self.job_id
        self.client = client
        self.maxlen = maxlen
        self.ttl_s = ttl_s

    def append(self, kind: str, data: dict) -> str:
        check_kind(kind)
        fields = {"kind": kind, "data": json.dumps(data, ensure_ascii=False)}
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.key, fields, maxlen=self.maxlen, approximate=True)
        pipe.expire(self.key, self.ttl_s)
        event_id, _ = pipe.execute()
        return as_text(event_id)

    def read(self, after: str = START, *, block_ms: int = 0, count: int = 1000) -> list[StreamEvent]:
        after = normalise_id(after)
        if block_ms > 0:
            # XREAD BLOCK returns as soon as one event exists after ``after``. One call blocks at most
            # MAX_BLOCK_MS: a longer one would outlast the client's socket timeout and raise.
            deadline = time.monotonic() + block_ms / 1000
            entries = []
            while not entries:
                wait_ms = min(MAX_BLOCK_MS, int((deadline - time.monotonic()) * 1000))
                if wait_ms <= 0:
                    break
                reply = self.client.xread({self.key: after}, count=count, block=wait_ms)
                entries = reply[0][1] if reply else []
        else:
            # XREAD with BLOCK 0 would wait forever; an exclusive range is the non-blocking read.
            entries = self.client.xrange(self.key, min=f"({after}", max="+", count=count)
        return [decode_entry(entry_id, fields) for entry_id, fields in entries]

    def delete(self) -> None:
        self.client.delete(self.key)


def decode_entry(entry_id, fields: dict) -> StreamEvent:
    fields = {as_text(key): as_text(value) for key, value in fields.items()}
    return StreamEvent(as_text(entry_id), fields["kind"], json.loads(fields["data"]))


def as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def normalise_id(event_id: str | None) -> str:
    ms, seq = parse_id(event_id or START)
    return f"{ms}-{seq}"


# --- in memory --------------------------------------------------------------------------

class MemoryTokenStream:
    """A job's events in this process's memory (embedded mode); same contract as Redis."""

    def __init__(self, job_id: str, *, maxlen: int = 4096, ttl_s: int = 3600):
        self.job_id = str(job_id)
        self.maxlen = maxlen
        self.ttl_s = ttl_s
        self.events: list[StreamEvent] = []
        self.last_id = (0, 0)
        self.expires_at = time.monotonic() + ttl_s
        self.changed = threading.Condition()

    def append(self, kind: str, data: dict) -> str:
        check_kind(kind)
        with self.changed:
            self.last_id = self.next_id()
            event = StreamEvent(f"{self.last_id[0]}-{self.last_id[1]}", kind, dict(data))
            self.events.append(event)
            del self.events[: max(0, len(self.events) - self.maxlen)]
            self.expires_at = time.monotonic() + self.ttl_s
            self.changed.notify_all()
        return event.id

    def next_id(self) -> tuple[int, int]:
        """Redis's rule: the current millisecond, or the last id's sequence + 1 within it."""
        now_ms = int(time.time() * 1000)
        if now_ms > self.last_id[0]:
            return now_ms, 0
        return self.last_id[0], self.last_id[1] + 1

    def read(self, after: str = START, *, block_ms: int = 0, count: int = 1000) -> list[StreamEvent]:
        after_key = parse_id(after or START)
        deadline = time.monotonic() + block_ms / 1000
        with self.changed:
            while True:
                found = [event for event in self.events if parse_id(event.id) > after_key][:count]
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                self.changed.wait(remaining)

    def delete(self) -> None:
        with self.changed:
            self.events.clear()
        _memory_streams.pop(self.job_id, None)

    @property
    def expired(self) -> bool:
        return time.monotonic() > self.expires_at


_memory_streams: dict[str, MemoryTokenStream] = {}
_memory_lock = threading.Lock()


def memory_stream(job_id: str, *, maxlen: int = 4096, ttl_s: int = 3600) -> MemoryTokenStream:
    """The process-wide in-memory stream of a job, created on first use; expired ones are dropped."""
    with _memory_lock:
        for key in [key for key, stream in _memory_streams.items() if stream.expired]:
            del _memory_streams[key]
        stream = _memory_streams.get(str(job_id))
        if stream is None:
            stream = _memory_streams[str(job_id)] = MemoryTokenStream(str(job_id), maxlen=maxlen, ttl_s=ttl_s)
        return stream


_redis_clients: dict[str, object] = {}


def redis_client(url: str):
    """One connection pool per Redis URL and process."""
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=30)
    return _redis_clients[url]


def open_stream(job_id, *, reap: Callable[[str], bool] | None = None) -> TokenStream:
    """The job's token stream: Redis Streams in service mode, in-memory in embedded mode.

    With ``reap`` (``job_id → whether it failed the job``) a blocking read that finds nothing calls it
    (at most every few seconds) to fail a job whose worker died, so the reader gets an ``error``.
    """
    config = engine_config()
    if settings.REDIS_URL:
        stream = RedisTokenStream(str(job_id), redis_client(settings.REDIS_URL),
                                  maxlen=config.stream_maxlen, ttl_s=config.stream_ttl_s)
    else:
        stream = memory_stream(str(job_id), maxlen=config.stream_maxlen, ttl_s=config.stream_ttl_s)
    return ReapingStream(stream, reap) if reap is not None else stream


_last_reap_check: dict[str, float] = {}
_last_event_at: dict[str, float] = {}


def stall_seconds() -> float:
    """KEFU_GENERATION_STALL_SECONDS: how long a reader waits without events before checking the job's worker."""
    return float(getattr(settings, "KEFU_GENERATION_STALL_SECONDS", 5))


class ReapingStream:
    """A TokenStream whose idle blocking reads also check that the job is still alive.

    The first idle read of a job checks at once (its worker may have died long ago); after that a
    check runs whenever the job's readers in this process saw no event for ``stall_seconds()``.
    A worker killed mid-stream is therefore noticed within its heartbeat expiry plus that time.
    """

    def __init__(self, inner: TokenStream, reap: Callable[[str], bool]):
        self.inner = inner
        self.job_id = inner.job_id
        self.reap = reap

    def append(self, kind: str, data: dict) -> str:
        return self.inner.append(kind, data)

    def delete(self) -> None:
        self.inner.delete()

    def read(self, after: str = START, *, block_ms: int = 0, count: int = 1000) -> list[StreamEvent]:
        events = self.inner.read(after, block_ms=block_ms, count=count)
        if events:
            _last_event_at[self.job_id] = time.monotonic()
        if events or block_ms <= 0 or not self.due_for_check():
            return events
        if self.reap(self.job_id):
            return self.inner.read(after, count=count)
        return events

    def due_for_check(self) -> bool:
        now = time.monotonic()
        last = max(_last_reap_check.get(self.job_id, float("-inf")), _last_event_at.get(self.job_id, float("-inf")))
        if now - last < stall_seconds():
            return False
        _last_reap_check[self.job_id] = now
        if len(_last_reap_check) > 10_000 or len(_last_event_at) > 10_000:
            _last_reap_check.clear()
            _last_event_at.clear()
        return True

