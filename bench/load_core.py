"""The load generator's parts, shared by ``bench/load_sse.py`` and ``tests/reliability/test_load_small.py``.

- :func:`faq_base_build`: a knowledge base from the first N rows of the real zaragoza FAQ
  (ingested through the ordinary path, as ``kb.demo`` does for all ~500 rows);
- :class:`Stack`: ONE uvicorn web process and two Celery workers (ingest; inference, which
  loads the bundled SmolLM2 model) in service mode on loopback, with their RSS;
- :func:`question_mix`: FAQ questions (cache hits once warmed, direct answers when fresh)
  and two-part knowledge questions that miss both and are generated for real;
- :func:`run_streams`: N concurrent ``POST /api/v1/chat/messages`` + ``GET`` stream
  (:mod:`bench.load_http`'s lean keep-alive client on uvloop), each timed to its first SSE event and to
  its final one;
- :func:`stream_problems`, :func:`stored_problems`: duplicated or missing tokens in a
  stream (against the job's own token stream) and lost messages (a 202 without a stored
  final outcome) — what the bench and the test assert is zero.

Django must be set up (the caller's database and Redis) before the ORM helpers are called.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.load_http import LeanClient

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://load.local"
FINAL_OUTCOMES = ("cached", "direct", "answered", "refused", "handed_off", "failed")
# Knowledge questions: two FAQ questions in one, kept only when their embedding stays below
# KNOWLEDGE_MAX_SIMILARITY to every FAQ question — they miss the direct-answer threshold (0.85)
# and the answer cache (0.95), yet retrieve both FAQs' passages, so the model answers them.
KNOWLEDGE_TEMPLATES = (
    "Two things I am unsure about. First, {a} Second, {b}",
    "For a school project on local building rules: {a} And how does that relate to this: {b}",
)
KNOWLEDGE_MAX_SIMILARITY = 0.78
# Read every reply from its stream, even one the POST carried whole (as a client that ignores ``done`` would).
ALWAYS_STREAM = os.environ.get("KEFU_LOAD_ALWAYS_STREAM") == "1"


# --- the knowledge base -------------------------------------------------------------------

def faq_rows(limit: int) -> list[dict]:
    """The first ``limit`` English rows of the zaragoza construction FAQ (CC BY 4.0)."""
    from kb.demo import faq_rows as all_rows

    return all_rows()[:limit]


def faq_base_build(*, rows: list[dict], slug: str = "load-zaragoza") -> object:
    """A knowledge base with one FAQ entry and one answer document per row, ingested and indexed."""
    from kb.indexing import index_build
    from kb.ingestion import document_ingest
    from kb.models import Document
    from kb.services import document_upload, faq_entry_create, knowledge_base_create

    kb = knowledge_base_create(name=f"Load test ({len(rows)} zaragoza FAQ rows)", slug=slug, languages="en")
    for row in rows:
        upload = document_upload(knowledge_base=kb, filename=f"{row['id']}.txt", data=row["a"].encode(),
                                 title=row["q"][:300], external_id=row["id"], enqueue=False)
        faq_entry_create(knowledge_base=kb, question=row["q"], answer=row["a"], external_id=row["id"],
                         source_document=upload.document, rebuild=False)
    for document_id in kb.documents.values_list("id", flat=True):
        document_ingest(document_id=document_id)
    failed = list(kb.documents.exclude(status=Document.Status.READY).values_list("title", "error_message")[:3])
    if failed:
        raise RuntimeError(f"FAQ documents failed to ingest, e.g. {failed}")
    kb.refresh_from_db()
    if kb.active_index_id is None:
        index_build(knowledge_base_id=kb.pk)
        kb.refresh_from_db()
    return kb


def widget_key_create(kb) -> str:
    from chat.models import WidgetKey

    return WidgetKey.objects.create(knowledge_base=kb, name="load", allowed_origins=[ORIGIN]).public_key


# --- the processes ----------------------------------------------------------------------

@dataclass(frozen=True)
class StackConfig:
    """Where the stack's processes store things, and the knobs the load needs."""

    database_url: str
    redis_url: str
    data_dir: Path
    answer_tokens: int = 32  # KEFU_CHAT_ANSWER_TOKENS: generated answers stay short so a run finishes
    inference_threads: int = 16  # the inference worker's thread pool (what the Makefile runs)
    torch_threads: int = 0  # KEFU_TORCH_THREADS of the generator (0: torch's default, one per core)
    web_workers: int = 1  # uvicorn --workers: web processes behind the one port
    log_dir: Path | None = None


def child_env(config: StackConfig) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update({
        "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "DJANGO_SETTINGS_MODULE": "kefu.settings",
        "DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "KEFU_DATA_DIR": str(config.data_dir),
        "KEFU_CHAT_ANSWER_TOKENS": str(config.answer_tokens), "KEFU_WARMUP": "1",
        "KEFU_TORCH_THREADS": str(config.torch_threads),
        # All load comes from 127.0.0.1 with one key: the per-IP and per-key limits would answer 429.
        "KEFU_CHAT_RATE_PER_IP": "1000000", "KEFU_CHAT_RATE_PER_KEY": "1000000",
        "KEFU_KB_RESUME_ON_START": "0", "LOG_LEVEL": "WARNING",
    })
    return env


@dataclass
class Child:
    """One started process of the stack, its log, and its memory (the process and its children)."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def rss_mb(self) -> float:
        import psutil

        try:
            parent = psutil.Process(self.process.pid)
            processes = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total / 2**20

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Stack:
    """ONE web process (uvicorn, kefu.asgi) and the ingest and inference Celery workers."""

    def __init__(self, config: StackConfig):
        self.config = config
        self.env = child_env(config)
        self.log_dir = config.log_dir or config.data_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.children: list[Child] = []

    def spawn(self, name: str, command: list[str]) -> Child:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def start(self, *, timeout_s: float = 300.0) -> Stack:
        python = sys.executable
        worker = [python, "-m", "celery", "-A", "kefu", "worker", "--loglevel", "INFO", "--without-gossip",
                  "--without-mingle"]
        self.spawn("worker-ingest", [*worker, "-Q", "ingest,default", "-P", "solo", "-n", f"load-ingest-{self.port}@%h"])
        self.spawn("worker-inference", [*worker, "-Q", "inference", "-P", "threads",
                                        "-c", str(self.config.inference_threads), "-n", f"load-infer-{self.port}@%h"])
        self.spawn("web", self.web_command(self.port, workers=self.config.web_workers))
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()  # a stack that never got ready leaves no process behind (``with`` never reaches __exit__)
            raise
        return self

    def web_command(self, port: int, *, workers: int = 1) -> list[str]:
        """uvicorn serving kefu.asgi on ``port``; ``workers`` > 1: that many processes behind the one socket."""
        return [sys.executable, "-m", "uvicorn", "kefu.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--lifespan", "off", "--no-access-log", "--log-level", "warning",
                "--timeout-keep-alive", "30"]  # as manage.py serve: longer than the client's idle expiry (5 s)

    def web_add(self, *, timeout_s: float = 120.0) -> str:
        """Another web process on a port of its own (as another pod would be); its base URL once ready."""
        port = free_port()
        self.spawn(f"web-{port}", self.web_command(port))
        base = f"http://127.0.0.1:{port}"
        self.wait_ready(timeout_s, base=base)
        return base

    def wait_ready(self, timeout_s: float, *, base: str = "") -> None:
        """Until /readyz says the web process has its embedder and an inference worker its model."""
        import httpx

        base = base or self.base
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            for child in self.children:
                if child.process.poll() is not None:
                    raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{child.log_tail()}")
            try:
                response = httpx.get(base + "/readyz", timeout=5)
                if response.status_code == 200:
                    return
                last = response.text[:500]
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(1)
        raise TimeoutError(f"the stack was not ready after {timeout_s:.0f} s: {last}")

    def rss_mb(self) -> dict[str, float]:
        return {child.name: child.rss_mb() for child in self.children}

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds so far: the web process(es), this client, and PostgreSQL's processes."""
        import psutil

        def of(process: psutil.Process) -> float:
            try:
                return sum(process.cpu_times()[:2])
            except psutil.Error:  # ended meanwhile
                return 0.0

        webs = [psutil.Process(c.process.pid) for c in self.children if c.name.startswith("web")]
        own = os.times()
        postgres = [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]
        return {"web": sum(of(p) for w in webs for p in [w, *w.children(recursive=True)]),
                "client": own.user + own.system, "postgres": sum(of(p) for p in postgres)}

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the questions ----------------------------------------------------------------------

@dataclass(frozen=True)
class Ask:
    """One request of the load: the question and what it is meant to exercise."""

    text: str
    kind: str  # "cache" (a warmed FAQ question), "direct" (a fresh FAQ question), "generated"


@dataclass(frozen=True)
class QuestionPools:
    """Disjoint pools, so one run's direct or generated asks are not another run's cache hits."""

    warm: list[str]  # FAQ questions put in the answer cache before the load
    fresh: list[str]  # FAQ questions never asked before: direct answers
    knowledge: list[str]  # unique knowledge questions that the model answers


def question_pools(rows: list[dict], *, warm: int, knowledge: int, seed: int = 7) -> QuestionPools:
    questions = [row["q"].strip() for row in rows]
    random.Random(seed).shuffle(questions)
    return QuestionPools(warm=questions[:warm], fresh=questions[warm:],
                         knowledge=knowledge_questions(questions, count=knowledge))


def knowledge_questions(questions: list[str], *, count: int) -> list[str]:
    """``count`` unique two-part questions, each below KNOWLEDGE_MAX_SIMILARITY to every FAQ question."""
    from kb.embedding import embed_texts

    if count <= 0:
        return []
    faq_vectors = embed_texts(questions)
    kept: list[str] = []
    n = len(questions)
    for step, template in ((step, template) for step in (7, 11, 13, 17, 19, 23) for template in KNOWLEDGE_TEMPLATES):
        candidates = [template.format(a=questions[i], b=questions[(i * step + 3) % n])
                      for i in range(n) if (i * step + 3) % n != i]
        similarity = (embed_texts(candidates) @ faq_vectors.T).max(axis=1)
        kept += [text for text, best in zip(candidates, similarity, strict=True)
                 if best < KNOWLEDGE_MAX_SIMILARITY and text not in kept]
        if len(kept) >= count:
            return kept[:count]
    raise ValueError(f"only {len(kept)} knowledge questions below {KNOWLEDGE_MAX_SIMILARITY} from {n} FAQ rows")


def question_mix(pools: QuestionPools, *, count: int, generated: int, direct: int, skip: tuple[int, int] = (0, 0),
                 seed: int = 11) -> list[Ask]:
    """``count`` asks: ``generated`` knowledge questions, ``direct`` fresh FAQ questions, the rest warmed
    FAQ questions (repeats: cache hits). ``skip`` (generated, direct) passes over the questions an
    earlier mix (the baseline's) used, so this one asks different ones."""
    if skip[1] + direct > len(pools.fresh) or skip[0] + generated > len(pools.knowledge):
        raise ValueError(f"not enough questions for {direct} direct and {generated} generated asks after {skip}")
    asks = [Ask(pools.knowledge[skip[0] + i], "generated") for i in range(generated)]
    asks += [Ask(pools.fresh[skip[1] + i], "direct") for i in range(direct)]
    asks += [Ask(pools.warm[i % len(pools.warm)], "cache") for i in range(count - len(asks))]
    random.Random(seed).shuffle(asks)
    return asks


# --- the client -------------------------------------------------------------------------

@dataclass
class StreamResult:
    """What one client saw: the POST, every SSE event of the stream, and the times (ms since the POST)."""

    ask: Ask
    status: int | None = None
    message_id: str = ""
    post_outcome: str = ""
    post_ms: float | None = None
    first_event_ms: float | None = None
    final_ms: float | None = None
    final_kind: str = ""  # "done" or "error" (the stream's closing event), "" when none arrived
    final: dict = field(default_factory=dict)
    token_ids: list[str] = field(default_factory=list)
    token_texts: list[str] = field(default_factory=list)
    error: str = ""  # what went wrong on the client side: "http_500", "timeout", "ReadError", ...

    @property
    def outcome(self) -> str:
        return self.final.get("outcome") or (self.final_kind if self.final_kind == "error" else "") or "none"


def sse_events(lines):
    """(id, event, data) of each SSE event in an async line iterator; comments and ``retry`` skipped."""

    async def events():
        event_id, kind, data = None, None, []
        async for line in lines:
            if line == "":
                if kind is not None or data:
                    yield event_id, kind or "message", "\n".join(data)
                event_id, kind, data = None, None, []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "id":
                    event_id = value
                elif name == "event":
                    kind = value
                elif name == "data":
                    data.append(value)

    return events()


async def one_stream(client, base: str, key: str, ask: Ask) -> StreamResult:
    """POST the question, then read its stream to the closing event."""
    result = StreamResult(ask)
    started = time.perf_counter()

    def since() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    response = await client.post(base + "/api/v1/chat/messages", json={"text": ask.text},
                                 headers={"X-Kefu-Key": key, "Origin": ORIGIN})
    result.status, result.post_ms = response.status_code, since()
    if response.status_code != 202:
        result.error = f"post_http_{response.status_code}"
        return result
    body = response.json()
    result.message_id, result.post_outcome = body["message_id"], body["outcome"]
    if "done" in body and not ALWAYS_STREAM:  # final at once: the widget reads it from the POST, as here
        result.first_event_ms = result.final_ms = result.post_ms
        result.final_kind, result.final = "done", body["done"]
        return result
    async with client.stream("GET", body["stream_url"], headers={"Origin": ORIGIN}) as stream:
        if stream.status_code != 200:
            result.error = f"stream_http_{stream.status_code}"
            return result
        async for event_id, kind, data in sse_events(stream.aiter_lines()):
            if result.first_event_ms is None:
                result.first_event_ms = since()
            payload = json.loads(data) if data else {}
            if kind == "token":
                result.token_ids.append(event_id or "")
                result.token_texts.append(payload.get("text", ""))
            elif kind in ("done", "error"):
                result.final_kind, result.final, result.final_ms = kind, payload, since()
                break
    if not result.final_kind:
        result.error = "stream_ended_without_final_event"
    return result


async def guarded_stream(client, base: str, key: str, ask: Ask, gate: asyncio.Semaphore,
                         timeout_s: float) -> StreamResult:
    async with gate:
        try:
            return await asyncio.wait_for(one_stream(client, base, key, ask), timeout_s)
        except TimeoutError:
            return StreamResult(ask, error="timeout")
        except Exception as exc:  # noqa: BLE001 - every client-side failure is counted by its type
            return StreamResult(ask, error=type(exc).__name__)


def http_client(concurrency: int, timeout_s: float) -> LeanClient:
    """The bench's HTTP client (:mod:`bench.load_http`: keep-alive HTTP/1.1, a fraction of httpx's CPU per ask);
    each ask is bounded by ``timeout_s`` in :func:`guarded_stream`."""
    return LeanClient(max_connections=concurrency + 8, connect_timeout_s=30.0)


async def run_streams_async(base: str, key: str, asks: list[Ask], *, concurrency: int,
                            timeout_s: float) -> list[StreamResult]:
    gate = asyncio.Semaphore(concurrency)
    async with http_client(concurrency, timeout_s) as client:
        return list(await asyncio.gather(*(guarded_stream(client, base, key, ask, gate, timeout_s) for ask in asks)))


def run_streams(base: str, key: str, asks: list[Ask], *, concurrency: int, timeout_s: float = 300.0
                ) -> list[StreamResult]:
    """Every ask as POST + stream, at most ``concurrency`` at once; each bounded by ``timeout_s``."""
    return run_client(run_streams_async(base, key, asks, concurrency=concurrency, timeout_s=timeout_s))


def run_client(coroutine):
    """Run the client's coroutine on uvloop when it is installed (uvicorn's standard extra brings it): the
    client's event loop costs CPU on the cores the server uses."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


async def run_rate_async(base: str, key: str, asks: list[Ask], *, rate: float, max_in_flight: int,
                         timeout_s: float, on_tick=None, tick_s: float = 10.0) -> list[StreamResult]:
    """Open loop: ask i starts at i / rate seconds (a fixed arrival rate, whatever the latency);
    ``on_tick(elapsed_s)`` is called every ``tick_s`` seconds (the soak samples memory there)."""
    gate = asyncio.Semaphore(max_in_flight)
    started = time.monotonic()
    tasks = []
    next_tick = tick_s
    async with http_client(max_in_flight, timeout_s) as client:
        for i, ask in enumerate(asks):
            due = started + i / rate
            while time.monotonic() < due:
                await asyncio.sleep(min(0.05, due - time.monotonic()))
                if on_tick is not None and time.monotonic() - started >= next_tick:
                    await asyncio.to_thread(on_tick, time.monotonic() - started)
                    next_tick += tick_s
            tasks.append(asyncio.create_task(guarded_stream(client, base, key, ask, gate, timeout_s)))
        return list(await asyncio.gather(*tasks))


# --- the checks -------------------------------------------------------------------------

def parse_event_id(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def stream_problems(result: StreamResult, source_token_ids: list[str] | None = None) -> list[str]:
    """Duplicated, reordered or missing tokens in what one client read.

    Token event ids are the job stream's ids: strictly increasing, and — given the job's own
    stream (``source_token_ids``) — exactly its token ids, no gap and no repeat. An answered
    ``done`` must be the concatenated token texts (the SSE view masks nothing for this base), up
    to the ``[n]`` marks attributed to an uncited answer; a generated "I don't know" is replaced
    by Kefu's own reply (outcome refused), so only its token ids are checked.
    """
    problems = []
    ids = [parse_event_id(event_id) for event_id in result.token_ids if event_id]
    if len(ids) != len(result.token_ids):
        problems.append("a token event without an id")
    if any(later <= earlier for earlier, later in zip(ids, ids[1:], strict=False)):
        problems.append("token ids not strictly increasing (duplicate or reordered token)")
    if source_token_ids is not None and result.token_ids != source_token_ids:
        missing = len(set(source_token_ids) - set(result.token_ids))
        extra = len(result.token_ids) - len(set(result.token_ids) & set(source_token_ids))
        problems.append(f"tokens differ from the job's stream: {missing} missing, {extra} duplicated or unknown")
    if result.final_kind == "done" and result.token_texts and result.final.get("outcome") == "answered":
        streamed, answer = without_marks("".join(result.token_texts)), without_marks(result.final.get("answer") or "")
        if streamed != answer:
            problems.append(f"streamed text != done answer ({len(streamed)} vs {len(answer)} chars)")
    return problems


CITATION_MARK = re.compile(r"\s*\[\d+(?:\s*[,，]\s*\d+)*\]")


def without_marks(text: str) -> str:
    """The text without ``[n]`` citation marks (attribution may add them after the stream)."""
    return CITATION_MARK.sub("", text).strip()


def job_token_ids(job_id: str) -> list[str]:
    """The ids of the token events in a job's stream, read straight from Redis (or memory)."""
    from inference.stream import START, open_stream

    stream = open_stream(job_id)
    ids, cursor = [], START
    while True:
        events = stream.read(cursor, block_ms=0)
        if not events:
            return ids
        ids += [event.id for event in events if event.kind == "token" and event.data.get("text")]
        cursor = events[-1].id


@dataclass(frozen=True)
class Verdict:
    """The checks over one run: messages lost and streams with token problems, each with its reason."""

    lost: list[str]
    token_problems: list[str]
    streams_checked: int

    @property
    def ok(self) -> bool:
        return not self.lost and not self.token_problems


def verify(results: list[StreamResult], *, settle_s: float = 30.0) -> Verdict:
    """Every 202 has a stored assistant message with a final outcome (waiting ``settle_s`` for ones a
    broken stream left generating) that matches what its stream said; every stream's tokens are whole."""
    from chat.models import Message

    accepted = [r for r in results if r.status == 202]
    deadline = time.monotonic() + settle_s
    stored: dict[str, Message] = {}
    while True:
        ids = [r.message_id for r in accepted]
        stored = {str(m.pk): m for m in Message.objects.filter(pk__in=ids).select_related("reply_to")}
        pending = [m for m in stored.values() if m.outcome == Message.Outcome.PENDING]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    lost, token_problems = [], []
    for result in accepted:
        message = stored.get(result.message_id)
        label = f"{result.message_id} ({result.ask.kind}: {result.ask.text[:50]!r})"
        if message is None:
            lost.append(f"{label}: no stored message")
            continue
        if message.outcome not in FINAL_OUTCOMES:
            lost.append(f"{label}: stored as {message.outcome!r}, not a final outcome")
            continue
        if message.reply_to is None:
            lost.append(f"{label}: the question itself is not stored")
        if result.final_kind == "done" and (result.final.get("outcome") != message.outcome
                                            or (result.final.get("answer") or "") != message.text):
            lost.append(f"{label}: the stream said {result.final.get('outcome')!r}, the database {message.outcome!r}")
        source = job_token_ids(message.inference_job_id) if message.inference_job_id else []
        for problem in stream_problems(result, source if result.final_kind else None):
            token_problems.append(f"{label}: {problem}")
    return Verdict(lost, token_problems, len(accepted))


# --- the report -------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


@dataclass(frozen=True)
class Summary:
    """The figures of one run, per outcome and overall."""

    label: str
    rows: list[tuple[str, int, list[float], list[float]]]  # outcome, count, first-event ms, final ms
    errors: dict[str, int]
    wall_s: float
    count: int

    def first_event(self, q: float) -> float | None:
        return percentile([v for _, _, firsts, _ in self.rows for v in firsts], q)


def summarize(label: str, results: list[StreamResult], wall_s: float) -> Summary:
    by_outcome: dict[str, list[StreamResult]] = {}
    for result in results:
        if not result.error:
            by_outcome.setdefault(result.outcome, []).append(result)
    rows = [(outcome, len(group), [r.first_event_ms for r in group if r.first_event_ms is not None],
             [r.final_ms for r in group if r.final_ms is not None])
            for outcome, group in sorted(by_outcome.items(), key=lambda item: -len(item[1]))]
    errors = Counter(result.error for result in results if result.error)
    return Summary(label, rows, dict(errors), wall_s, len(results))


def summary_table(summary: Summary) -> str:
    lines = [f"### {summary.label}: {summary.count} streams in {summary.wall_s:.1f} s "
             f"({summary.count / summary.wall_s:.1f} streams/s)",
             "| outcome | n | first event p50 ms | p95 ms | max ms | done p50 ms | p95 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    all_first, all_final = [], []
    for outcome, count, firsts, finals in summary.rows:
        all_first += firsts
        all_final += finals
        lines.append(f"| {outcome} | {count} | {fmt_ms(percentile(firsts, 50))} | {fmt_ms(percentile(firsts, 95))} | "
                     f"{fmt_ms(max(firsts, default=None))} | {fmt_ms(percentile(finals, 50))} | "
                     f"{fmt_ms(percentile(finals, 95))} | {fmt_ms(max(finals, default=None))} |")
    lines.append(f"| **all** | {len(all_first)} | {fmt_ms(percentile(all_first, 50))} | "
                 f"{fmt_ms(percentile(all_first, 95))} | {fmt_ms(max(all_first, default=None))} | "
                 f"{fmt_ms(percentile(all_final, 50))} | {fmt_ms(percentile(all_final, 95))} | "
                 f"{fmt_ms(max(all_final, default=None))} |")
    errors = ", ".join(f"{name} ×{n}" for name, n in sorted(summary.errors.items())) or "none"
    lines.append(f"\nclient-side errors: {errors}")
    return "\n".join(lines)


def comparison_table(baseline: Summary, loaded: Summary, concurrency: int) -> str:
    def row(name: str, q: float) -> str:
        base, load = baseline.first_event(q), loaded.first_event(q)
        ratio = f"{load / base:.1f}×" if base and load is not None else "-"
        return f"| time to first event {name} | {fmt_ms(base)} | {fmt_ms(load)} | {ratio} |"

    return "\n".join([
        f"| measure | c=1 (baseline, {baseline.count} asks) | c={concurrency} ({loaded.count} asks) | ratio |",
        "|---|---:|---:|---:|", row("p50 ms", 50), row("p95 ms", 95),
        f"| throughput streams/s | {baseline.count / baseline.wall_s:.1f} | {loaded.count / loaded.wall_s:.1f} | "
        f"{(loaded.count / loaded.wall_s) / (baseline.count / baseline.wall_s):.1f}× |",
    ])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
