"""Server-side latency of the chat API through the real ASGI app, with its stage-by-stage breakdown.

    flock /tmp/kefu-bench.lock .venv/bin/python bench/chat_latency.py --data-dir DIR [--n 30] [--first-token 8]

``DIR`` is a ``KEFU_DATA_DIR`` where ``manage.py demo_setup`` has run (embedded mode). It is
copied to a scratch directory first, so the bench's messages never land in it. The bench
serves kefu's ASGI application with uvicorn from a thread of this process, on loopback, and
drives it over HTTP with httpx (one kept-alive connection), as a widget would:

- **direct answer**: FAQ questions asked for the first time (the answer cache is emptied first),
  ``POST /api/v1/chat/messages`` → 202, then the same plus reading the SSE ``done`` event;
- **cache hit**: the same questions again (exact hits), POST and POST + ``done``;
- **extractive answer**: knowledge questions answered from passage sentences (extractive mode);
- **POST to first token**: knowledge questions in generative mode, from the POST until the first
  ``token`` event of the stream, with this process's generator (the bundled CPU model unless
  configured otherwise).

Baselines in the same run: (1) each answer's own stage breakdown (``timings["stages"]``: context
reads, cache, embedding, intent, retrieval, decision, writes), whose sum against the HTTP time
shows what the API layer costs; (2) retrieval as the chat app called it before ``query_vector=``
(``kb.search.hybrid`` embedding the question a second time) against the current call.

Not a test: figures depend on the machine and its load (print ``uptime`` next to them).
Budget: ~30 s plus the model load and the generated answers (seconds each on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://bench.local"
KNOWLEDGE_QUESTIONS = [
    "What should I think about before renovating a bathroom in an old house?",
    "Explain how moisture gets into a basement and how to stop it.",
    "What do I need to check in a contractor's quote before signing?",
    "How do I plan the insulation of an attic floor?",
    "What are the steps of building an extension, from idea to final inspection?",
    "Which permits do I need before replacing my windows?",
    "How can I lower the heating costs of an old villa?",
    "What happens if the builder finishes the job late?",
]
STAGES = ("context", "cache", "embed", "intent", "retrieve", "decide", "store")


def django_setup(data_dir: Path) -> Path:
    """Embedded mode on a scratch copy of ``data_dir``."""
    scratch = Path(tempfile.mkdtemp(prefix="kefu-chat-bench-"))
    shutil.copytree(data_dir, scratch / "data", ignore=shutil.ignore_patterns("uploads", "static", "models"))
    # The generator converted from the bundled GGUF is kept in the source dir: converted once, not per run.
    (data_dir / "models").mkdir(exist_ok=True)
    (scratch / "data" / "models").symlink_to((data_dir / "models").resolve())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["KEFU_DATA_DIR"] = str(scratch / "data")
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ["KEFU_WARMUP"] = "0"
    os.environ["KEFU_KB_RESUME_ON_START"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return scratch


def serve() -> tuple[str, object]:
    """uvicorn serving the ASGI app from a daemon thread; returns its base URL and the server."""
    import socket

    import uvicorn
    from django.conf import settings
    from django.core.asgi import get_asgi_application

    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(get_asgi_application(), host="127.0.0.1", port=port,
                                           lifespan="off", log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise SystemExit("uvicorn did not start")
    return f"http://127.0.0.1:{port}", server


class Widget:
    """What the widget does over HTTP: POST a question, read its SSE stream."""

    def __init__(self, base_url: str, key: str):
        import httpx

        self.http = httpx.Client(base_url=base_url, timeout=600,
                                 headers={"X-Kefu-Key": key, "Origin": ORIGIN})

    def post(self, text: str) -> dict:
        response = self.http.post("/api/v1/chat/messages", content=json.dumps({"text": text}),
                                  headers={"Content-Type": "application/json"})
        if response.status_code != 202:
            raise SystemExit(f"POST answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def read_until(self, stream_url: str, kind: str) -> str:
        """Read the SSE stream until the first event of ``kind`` (or the final one); returns the kind seen."""
        seen = ""
        with self.http.stream("GET", stream_url) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    seen = line[len("event: "):]
                    if seen in (kind, "done", "error"):
                        return seen
        return seen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def timed_round(widget: Widget, questions: list[str], *, until: str | None = None):
    """POST each question (and read its stream until ``until``); (POST ms, POST+stream ms, outcomes, ids)."""
    posts, totals, outcomes, ids = [], [], Counter(), []
    for question in questions:
        started = time.perf_counter()
        body = widget.post(question)
        posts.append(ms_since(started))
        if until:
            widget.read_until(body["stream_url"], until)
            totals.append(ms_since(started))
        outcomes[body["outcome"]] += 1
        ids.append(body["message_id"])
    return posts, totals, dict(outcomes), ids


def stage_medians(message_ids: list[str]) -> dict[str, float]:
    from chat.models import Message

    rows = [m.timings for m in Message.objects.filter(pk__in=message_ids)]
    out = {stage: statistics.median([t.get("stages", {}).get(stage, 0.0) for t in rows]) for stage in STAGES}
    out["pipeline"] = statistics.median([t.get("pipeline_ms", 0.0) for t in rows])
    return out


def profile_set(kb, mode: str) -> None:
    from chat.models import ChatProfile

    profile, _ = ChatProfile.objects.get_or_create(knowledge_base=kb)
    profile.answer_mode = mode
    profile.save()


def retrieval_baseline(kb, questions: list[str]) -> tuple[list[float], list[float]]:
    """hybrid() embedding the question itself (the path before query_vector=) vs with the vector given."""
    from chat.services import embed_question
    from kb.search import hybrid

    before, now = [], []
    for question in questions:
        vector = embed_question(question, kb=kb)
        started = time.perf_counter()
        hybrid(kb, question, kb.top_k)
        before.append(ms_since(started))
        started = time.perf_counter()
        hybrid(kb, question, kb.top_k, query_vector=vector)
        now.append(ms_since(started))
    return before, now


def first_tokens(widget: Widget, count: int):
    times, outcomes, ids = [], Counter(), []
    for question in (KNOWLEDGE_QUESTIONS * count)[:count]:
        started = time.perf_counter()
        body = widget.post(question)
        kind = widget.read_until(body["stream_url"], "token")
        outcomes[f"{body['outcome']}→{kind}"] += 1
        ids.append(body["message_id"])
        if kind == "token":
            times.append(ms_since(started))
        # Let the answer finish before the next question, so each first token is measured alone.
        widget.read_until(body["stream_url"], "done")
    return times, dict(outcomes), ids


def row(name: str, values: list[float], note: str = "") -> None:
    if not values:
        print(f"| {name} | 0 | — | — | {note} |")
        return
    print(f"| {name} | {len(values)} | {statistics.median(values):.1f} | {percentile(values, 95):.1f} | {note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path, help="a KEFU_DATA_DIR where demo_setup ran")
    parser.add_argument("--kb", default="demo-zaragoza")
    parser.add_argument("--n", type=int, default=30, help="FAQ questions per round")
    parser.add_argument("--first-token", type=int, default=8, help="generated answers to time (0: none)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads of this process (0: torch's default, what a web process gets)")
    args = parser.parse_args()
    if not (args.data_dir / "kefu.sqlite3").is_file():
        raise SystemExit(f"{args.data_dir} has no kefu.sqlite3: run `KEFU_DATA_DIR={args.data_dir} "
                         "manage.py demo_setup` first")
    scratch = django_setup(args.data_dir)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # process-wide: the embedder and the in-process generator
    try:
        run(args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(args) -> None:
    from django.conf import settings

    from chat.models import CachedAnswer, WidgetKey
    from kb.selectors import knowledge_base_get

    kb = knowledge_base_get(ref=args.kb)
    questions = list(kb.faq_entries.order_by("id").values_list("question", flat=True)[: args.n])
    key, _ = WidgetKey.objects.get_or_create(knowledge_base=kb, name="bench", defaults={"allowed_origins": [ORIGIN]})
    settings.KEFU_CHAT_RATE_LIMITS = {scope: (10**9, 60) for scope in settings.KEFU_CHAT_RATE_LIMITS}
    base_url, server = serve()
    widget = Widget(base_url, key.public_key)
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(f"torch threads: {threads()}; {len(questions)} FAQ questions; server {base_url}\n")
    profile_set(kb, "generative")
    widget.post(questions[-1])  # embedder, index, intent classifier (a direct answer: no generation starts)
    CachedAnswer.objects.filter(knowledge_base=kb).delete()
    direct_post, _, direct_outcomes, direct_ids = timed_round(widget, questions)
    cached_post, _, cached_outcomes, cached_ids = timed_round(widget, questions)
    CachedAnswer.objects.filter(knowledge_base=kb).delete()
    direct_full, direct_sse, _, _ = timed_round(widget, questions, until="done")
    cached_full, cached_sse, _, _ = timed_round(widget, questions, until="done")
    profile_set(kb, "extractive")
    CachedAnswer.objects.filter(knowledge_base=kb).delete()
    extract_post, extract_sse, extract_outcomes, extract_ids = timed_round(widget, KNOWLEDGE_QUESTIONS, until="done")
    profile_set(kb, "generative")
    before, now = retrieval_baseline(kb, questions)
    token_times, token_outcomes, token_ids = [], {}, []
    if args.first_token:
        from inference.runtime import get_generator

        get_generator()  # the model loads here, outside the timed requests
        CachedAnswer.objects.filter(knowledge_base=kb).delete()
        token_times, token_outcomes, token_ids = first_tokens(widget, args.first_token)

    print("| measure (through the ASGI app over HTTP) | n | p50 ms | p95 ms | outcomes |")
    print("|---|---|---|---|---|")
    row("direct answer: POST → 202", direct_post, str(direct_outcomes))
    row("direct answer: POST → SSE done", direct_sse)
    row("cache hit: POST → 202", cached_post, str(cached_outcomes))
    row("cache hit: POST → SSE done", cached_sse)
    row("extractive answer: POST → SSE done", extract_sse, str(extract_outcomes))
    row("generated answer: POST → first token", token_times, str(token_outcomes))
    print("\nBaseline 1 — where the POST's time goes (p50 of each answer's stored stage timings, ms):\n")
    print("| answers | " + " | ".join(STAGES) + " | pipeline | HTTP POST p50 |")
    print("|---|" + "---|" * (len(STAGES) + 2))
    for name, ids, http in (("direct", direct_ids, direct_post), ("cache hit", cached_ids, cached_post),
                            ("extractive", extract_ids, extract_post), ("generated", token_ids, [])):
        if not ids:
            continue
        medians = stage_medians(ids)
        http_p50 = f"{statistics.median(http):.1f}" if http else "—"
        print(f"| {name} | " + " | ".join(f"{medians[s]:.1f}" for s in STAGES)
              + f" | {medians['pipeline']:.1f} | {http_p50} |")
    print("\nBaseline 2 — retrieval (kb.search.hybrid) as called before and after query_vector=:\n")
    print("| call | n | p50 ms | p95 ms | note |")
    print("|---|---|---|---|---|")
    row("hybrid(kb, q) — embeds q again (before)", before)
    row("hybrid(kb, q, query_vector=v) (now)", now)
    print(f"\nuptime: {os.popen('uptime').read().strip()}")
    server.should_exit = True


def threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
