"""Token streams: one suite, run against the Redis Streams and the in-memory implementation."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from inference.outcomes import GenerationDone, GenerationError
from inference.stream import (
    DONE,
    ERROR,
    TOKEN,
    MemoryTokenStream,
    RedisTokenStream,
    StreamEvent,
    parse_id,
    read_all,
    write_done,
    write_error,
    write_token,
)


@pytest.fixture(params=["redis", "memory"])
def make_stream(request):
    """A factory of fresh streams of one implementation; Redis streams are deleted afterwards."""
    made = []

    def make(*, maxlen: int = 4096, ttl_s: int = 3600):
        job_id = f"test-{uuid.uuid4().hex}"
        if request.param == "redis":
            client = request.getfixturevalue("redis_client")
            stream = RedisTokenStream(job_id, client, maxlen=maxlen, ttl_s=ttl_s)
        else:
            stream = MemoryTokenStream(job_id, maxlen=maxlen, ttl_s=ttl_s)
        made.append(stream)
        return stream

    yield make
    for stream in made:
        stream.delete()


def test_events_come_back_in_order_with_increasing_ids(make_stream):
    # given a stream with tokens and a final done event
    stream = make_stream()
    for text in ["Hel", "lo", " there"]:
        write_token(stream, text)
    write_done(stream, GenerationDone(text="Hello there", completion_tokens=3))

    # when a reader reads from the start
    events = stream.read()

    # then it sees every event once, in order, with strictly increasing ids
    assert [event.kind for event in events] == [TOKEN, TOKEN, TOKEN, DONE]
    assert [event.data.get("text") for event in events] == ["Hel", "lo", " there", "Hello there"]
    ids = [parse_id(event.id) for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(isinstance(event, StreamEvent) for event in events)
    assert events[-1].is_final and not events[0].is_final
    # and the final event reads back as the payload that was written
    assert events[-1].outcome == GenerationDone(text="Hello there", completion_tokens=3)


def test_reader_resumes_after_last_id_without_duplicates(make_stream):
    # given a reader that saw the first two events
    stream = make_stream()
    for index in range(5):
        write_token(stream, f"t{index}")
    first = stream.read(count=2)
    assert [event.data["text"] for event in first] == ["t0", "t1"]

    # when more events arrive and it resumes after the last id it saw
    write_error(stream, GenerationError("timeout", "generation took too long"))
    rest = stream.read(first[-1].id)

    # then it gets exactly the events it has not seen
    assert [event.data.get("text") for event in rest[:3]] == ["t2", "t3", "t4"]
    assert rest[-1].kind == ERROR and rest[-1].data == {"code": "timeout", "message": "generation took too long"}
    assert stream.read(rest[-1].id) == []


def test_blocking_read_wakes_up_when_an_event_is_written(make_stream):
    # given a reader blocked on an empty stream
    stream = make_stream()
    threading.Timer(0.2, lambda: write_token(stream, "late")).start()

    # when an event is written while it waits
    started = time.monotonic()
    events = stream.read(block_ms=5000)

    # then it returns with that event, long before the block timeout
    assert [event.data["text"] for event in events] == ["late"]
    assert time.monotonic() - started < 4


def test_blocking_read_times_out_empty(make_stream):
    stream = make_stream()
    started = time.monotonic()
    assert stream.read(block_ms=150) == []
    assert time.monotonic() - started >= 0.1


def test_read_all_follows_a_concurrent_writer_to_the_final_event(make_stream):
    # given a writer thread producing 50 tokens then done
    stream = make_stream()

    def produce():
        for index in range(50):
            write_token(stream, str(index))
        write_done(stream, GenerationDone(text="all"))

    writer = threading.Thread(target=produce)
    writer.start()

    # when a reader follows it
    events = read_all(stream, timeout_s=10)
    writer.join()

    # then it sees all 50 tokens once and stops at done
    assert [event.data["text"] for event in events[:-1]] == [str(index) for index in range(50)]
    assert events[-1].kind == DONE


def test_maxlen_trims_old_events(make_stream):
    # given a stream capped to 10 events
    stream = make_stream(maxlen=10)

    # when 500 are written
    for index in range(500):
        write_token(stream, str(index))

    # then far fewer than 500 are kept and the newest is there (Redis trims approximately)
    events = stream.read(count=10_000)
    assert len(events) < 500
    assert events[-1].data["text"] == "499"


def test_unknown_event_kind_is_refused(make_stream):
    with pytest.raises(ValueError, match="unknown stream event kind"):
        make_stream().append("tokn", {"text": "x"})


def test_redis_stream_has_an_expiry(redis_client):
    # given a Redis stream with a one-minute ttl
    stream = RedisTokenStream(f"test-{uuid.uuid4().hex}", redis_client, ttl_s=60)
    try:
        # when an event is written
        write_token(stream, "x")
        # then the key expires by itself
        assert 0 < redis_client.ttl(stream.key) <= 60
    finally:
        stream.delete()


def test_memory_stream_expires_after_its_ttl():
    # given an in-memory stream with a tiny ttl
    from inference.stream import memory_stream

    job_id = f"test-{uuid.uuid4().hex}"
    stream = memory_stream(job_id, ttl_s=0)
    write_token(stream, "x")
    time.sleep(0.01)

    # when the registry is next consulted, then the expired stream is gone (a fresh one is made)
    assert memory_stream(job_id).read() == []
