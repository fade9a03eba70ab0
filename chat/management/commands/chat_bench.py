"""``python manage.py chat_bench KB``: server-side latency of the chat API, printed as a table.

Measures, through the real view (Django's in-process client: routing, key and origin
checks, guard, rate limits, pipeline, database writes):

- direct answers: FAQ questions asked for the first time (the cache is emptied first);
- cache hits: the same questions asked again (exact hits);
- with ``--first-token N``: POST-to-first-token of N generated answers, the first token
  read from the job's token stream, with this process's generator (embedded mode: the
  bundled CPU model unless configured otherwise).

Not a test: numbers depend on the machine. Writes messages to the configured database
(run it against a scratch KEFU_DATA_DIR). Budget: ~10 s plus model load and generation.
"""

from __future__ import annotations

import statistics
import time

from django.core.management.base import BaseCommand, CommandError

ORIGIN = "http://bench.local"
KNOWLEDGE_QUESTIONS = [
    "What should I think about before renovating a bathroom in an old house?",
    "Explain how moisture gets into a basement and how to stop it.",
    "What do I need to check in a contractor's quote before signing?",
    "How do I plan the insulation of an attic floor?",
    "What are the steps of building an extension, from idea to final inspection?",
]


class HttpClient:
    """The in-process client's ``post`` over real HTTP (httpx, one kept-alive connection)."""

    def __init__(self, base_url: str, key: str):
        import httpx

        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=60,
                                 headers={"X-Kefu-Key": key, "Origin": ORIGIN})

    def post(self, path, data, content_type):
        import json as _json

        response = self.http.post(path, content=_json.dumps(data), headers={"Content-Type": content_type})
        response.content_type = response.headers.get("content-type")
        response.status_code = response.status_code
        return response


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Command(BaseCommand):
    help = "Print p50/p95 of direct answers, cache hits and (optionally) POST-to-first-token."

    def add_arguments(self, parser):
        parser.add_argument("kb", help="knowledge base slug or id (with FAQ entries)")
        parser.add_argument("--n", type=int, default=30, help="FAQ questions per round")
        parser.add_argument("--first-token", type=int, default=0, help="generated answers to time")
        parser.add_argument("--url", default="", help="time a running server (e.g. http://127.0.0.1:8000) "
                                                      "over HTTP instead of the in-process client")

    def handle(self, *args, **options):
        from django.test import Client

        from chat.models import CachedAnswer, WidgetKey
        from kb.selectors import knowledge_base_get

        kb = knowledge_base_get(ref=options["kb"])
        if kb.active_index_id is None:
            raise CommandError(f"{kb.slug} has no index")
        questions = list(kb.faq_entries.order_by("id").values_list("question", flat=True)[: options["n"]])
        if not questions:
            raise CommandError(f"{kb.slug} has no FAQ entries")
        key, _ = WidgetKey.objects.get_or_create(knowledge_base=kb, name="bench",
                                                 defaults={"allowed_origins": [ORIGIN]})
        client = (HttpClient(options["url"], key.public_key) if options["url"]
                  else Client(HTTP_X_KEFU_KEY=key.public_key, HTTP_ORIGIN=ORIGIN, SERVER_NAME="localhost"))
        from django.conf import settings

        settings.KEFU_CHAT_RATE_LIMITS = {scope: (10**9, 60) for scope in settings.KEFU_CHAT_RATE_LIMITS}
        CachedAnswer.objects.filter(knowledge_base=kb).delete()
        self.ask(client, "warm-up: what is a building permit?")  # loads the embedder, indexes, classifier
        rows = []
        direct, outcomes = self.round(client, questions)
        rows.append(("direct answer (first ask)", direct, outcomes))
        cached, outcomes = self.round(client, questions)
        rows.append(("cache hit (same question again)", cached, outcomes))
        self.stdout.write(f"{'measure':36} {'n':>4} {'p50 ms':>9} {'p95 ms':>9}  outcomes")
        for row in rows:
            self.write_row(*row)
        if options["first_token"]:
            self.write_row(*self.first_tokens(client, options["first_token"]))

    def write_row(self, name, values, outcomes):
        self.stdout.write(f"{name:36} {len(values):>4} {statistics.median(values):>9.1f} "
                          f"{percentile(values, 95):>9.1f}  {outcomes}")

    def ask(self, client, text: str):
        started = time.perf_counter()
        response = client.post("/api/v1/chat/messages", {"text": text}, content_type="application/json")
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 202:
            raise CommandError(f"POST answered {response.status_code}: {response.content[:200]!r}")
        return elapsed, response.json()

    def round(self, client, questions):
        from collections import Counter

        times, outcomes = [], Counter()
        for question in questions:
            elapsed, body = self.ask(client, question)
            times.append(elapsed)
            outcomes[body["outcome"]] += 1
        return times, dict(outcomes)

    def first_tokens(self, client, count: int):
        from chat.models import Message
        from inference.runtime import GeneratorUnavailable, get_generator
        from inference.stream import open_stream, read_all

        try:
            get_generator()  # loads the model here, outside the timed requests
        except GeneratorUnavailable as exc:
            raise CommandError(str(exc)) from exc
        times, outcomes = [], {}
        for question in (KNOWLEDGE_QUESTIONS * count)[:count]:
            started = time.perf_counter()
            _, body = self.ask(client, question)
            outcomes[body["outcome"]] = outcomes.get(body["outcome"], 0) + 1
            job_id = Message.objects.get(pk=body["message_id"]).inference_job_id
            if not job_id:
                continue
            stream, cursor = open_stream(job_id), "0-0"
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                events = stream.read(cursor, block_ms=500)
                if any(e.kind == "token" for e in events):
                    times.append((time.perf_counter() - started) * 1000)
                    break
                if events:
                    cursor = events[-1].id
                    if events[-1].is_final:
                        break
            read_all(stream, after=cursor, timeout_s=300)  # let it finish before the next one starts
        if not times:
            raise CommandError(f"no generated answer produced a token (outcomes {outcomes})")
        return ("POST to first token (generated)", times, outcomes)
