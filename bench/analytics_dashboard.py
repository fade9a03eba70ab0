"""Staff dashboard render times over 1M messages: rollups vs the same numbers from raw messages, in one run.

    .venv/bin/python bench/analytics_dashboard.py [--messages 1000000] [--postgres] [--renders 20]

1. Seeds ``--messages`` chat messages (half questions, half replies) in ~N/4 conversations
   over the last 30 days — 3 knowledge bases, 6 widget keys, a Zipf-like mix of 1,500
   questions per base, realistic outcomes, timings, tokens and 10 % ratings — plus 20,000
   MoE generations with expert counts (8 layers × 16 experts). ``bulk_create`` in batches
   of 10,000 rows, ``created_at`` set explicitly.
2. Runs the first full rollup (``rollup_refresh``), then an incremental one after 2,000
   new messages.
3. Renders each staff page through Django's test client (staff user, full middleware and
   templates) ``--renders`` times after one warm-up render and prints p50/p95, next to a
   baseline that computes the dashboard's numbers straight from the message table
   (GROUP BY per bucket + every reply's timings for the percentiles) in the same process.

Database: a fresh SQLite file in a temp dir (default) or, with ``--postgres``, a fresh
database (``--pg-database``, default ``kefu_bench_analytics``) on 127.0.0.1:5432 (dropped and recreated).
``--seed-only`` stops after seeding (seed outside the benchmark lock, measure under it); ``--reuse DIR``
measures again on the database an earlier run seeded (the rollups are recomputed from scratch).
Budget (1M messages, SQLite, 2 cores shared at load ~6): seeding ~20 min (measured 1,183 s),
first rollup ~2.5 min, renders and baseline ~6 min; peak memory < 1 GB (measured ≤ 0.6 GB:
the rollup streams rows in chunks of 5,000, seeding holds one batch of 10,000).
Nothing here gates CI; the goal is dashboard p95 ≤ 300 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 10_000
BASES = 3
KEYS_PER_BASE = 2
QUESTIONS_PER_BASE = 1500
DAYS = 30
MOE_MODEL = "bench-moe"
OUTCOME_WEIGHTS = {"cached": 25, "direct": 15, "answered": 40, "handed_off": 5, "refused": 10, "failed": 3,
                   "pending": 2}
INTENTS = {"cached": [""], "direct": ["faq"], "answered": ["knowledge", "knowledge", "chitchat"],
           "handed_off": ["handoff"], "refused": ["knowledge", "out_of_scope"], "failed": ["knowledge"],
           "pending": ["knowledge"]}
ACTIONS = ["return", "exchange", "track", "cancel", "pay for", "repair", "insure", "register", "upgrade", "ship",
           "reset", "activate", "renew", "transfer", "collect"]
THINGS = ["order", "parcel", "subscription", "warranty", "account", "invoice", "gift card", "bike", "laptop",
          "phone", "membership", "delivery", "refund", "voucher", "booking", "password", "card", "contract",
          "device", "ticket"]
SUFFIXES = ["", " abroad", " online", " today", " after 30 days", " without a receipt", " in a shop"]


def django_setup(postgres: bool, reuse: Path | None = None, pg_database: str = "kefu_bench_analytics") -> Path:
    workdir = reuse or Path(tempfile.mkdtemp(prefix="kefu-analytics-bench-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["KEFU_DATA_DIR"] = str(workdir)
    os.environ.pop("REDIS_URL", None)
    os.environ["KEFU_WARMUP"] = "0"
    os.environ["KEFU_MODEL"] = MOE_MODEL
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")
    if postgres and not reuse:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{pg_database}"')
            connection.execute(f'CREATE DATABASE "{pg_database}"')
    if postgres:
        os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{pg_database}"
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return workdir


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def question_pool(rng: random.Random) -> list[str]:
    pool = {f"How do I {action} my {thing}{suffix}?" for action in ACTIONS for thing in THINGS for suffix in SUFFIXES}
    return rng.sample(sorted(pool), QUESTIONS_PER_BASE)


def zipf_pick(rng: random.Random, pool: list[str]) -> str:
    return pool[min(int(rng.paretovariate(1.1)) - 1, len(pool) - 1) if rng.random() < 0.7
                else rng.randrange(len(pool))]


def reply_fields(rng: random.Random, outcome: str) -> dict:
    """Timings and tokens of a reply with this outcome, shaped like the chat app stores them."""
    pipeline = rng.uniform(8, 60)
    if outcome == "answered":
        queue = rng.expovariate(1 / 80)
        first = pipeline + queue + rng.lognormvariate(6.0, 0.5)
        completion = rng.randint(20, 250)
        speed = rng.uniform(15, 45)
        return {"timings": {"pipeline_ms": pipeline, "queue_ms": queue, "first_token_ms": first,
                            "ttft_ms": first - pipeline, "tokens_per_s": speed,
                            "total_ms": first + 1000 * completion / speed},
                "prompt_tokens": rng.randint(300, 1500), "completion_tokens": completion}
    if outcome == "failed":
        return {"timings": {"pipeline_ms": pipeline, "total_ms": rng.uniform(5000, 60000)}}
    if outcome == "pending":
        return {"timings": {"pipeline_ms": pipeline}}
    return {"timings": {"pipeline_ms": pipeline, "total_ms": pipeline + rng.uniform(1, 40)}}


def moment(rng: random.Random, now: datetime, span: timedelta) -> datetime:
    """A time in the last ``span``, busier in the daytime (UTC)."""
    while True:
        at = now - timedelta(seconds=rng.uniform(0, span.total_seconds()))
        if rng.random() < 0.35 + 0.65 * (1 if 8 <= at.hour < 20 else 0.2):
            return at


def seed_setup(rng: random.Random) -> dict:
    from chat.models import Conversation, Feedback, Message, WidgetKey
    from kb.models import KnowledgeBase

    for model in (Conversation, Message, Feedback):
        model._meta.get_field("created_at").auto_now_add = False  # the bench writes the past
    Feedback._meta.get_field("updated_at").auto_now = False
    bases = [KnowledgeBase.objects.create(name=f"Bench base {i}", slug=f"bench-{i}") for i in range(BASES)]
    keys = {kb.pk: [WidgetKey.objects.create(knowledge_base=kb, name=f"{kb.slug}-site-{j}")
                    for j in range(KEYS_PER_BASE)] for kb in bases}
    return {"bases": bases, "keys": keys, "pools": {kb.pk: question_pool(rng) for kb in bases}}


def existing_world(rng: random.Random) -> dict:
    """The bases and keys of a database seeded by an earlier run (``--reuse``)."""
    from django.db.models import F

    from chat.models import Conversation, Feedback, Message, WidgetKey
    from kb.models import KnowledgeBase

    for model in (Conversation, Message, Feedback):
        model._meta.get_field("created_at").auto_now_add = False
    Feedback._meta.get_field("updated_at").auto_now = False
    Feedback.objects.exclude(updated_at=F("created_at")).update(updated_at=F("created_at"))  # rated when answered
    bases = list(KnowledgeBase.objects.filter(slug__startswith="bench-").order_by("pk"))
    keys = {kb.pk: list(WidgetKey.objects.filter(knowledge_base=kb).order_by("pk")) for kb in bases}
    return {"bases": bases, "keys": keys, "pools": {kb.pk: question_pool(rng) for kb in bases}}


def seed(world: dict, messages: int, rng: random.Random, span: timedelta = timedelta(days=DAYS)) -> datetime:
    """``messages`` messages in conversations spread over the last ``span``; returns "now"."""
    from django.db import transaction

    from chat.models import Conversation, Feedback, Message

    now = datetime.now().astimezone()
    bases, keys, pools = world["bases"], world["keys"], world["pools"]
    outcomes, weights = list(OUTCOME_WEIGHTS), list(OUTCOME_WEIGHTS.values())
    written = 0
    while written < messages:
        conversations, plans = [], []
        while written + sum(2 * n for _, n in plans) < messages and len(conversations) < BATCH // 4:
            kb = rng.choice(bases)
            at = moment(rng, now, span)
            status = "handed_off" if rng.random() < 0.03 else "open"
            conversations.append(Conversation(knowledge_base=kb, widget_key=rng.choice(keys[kb.pk]),
                                              visitor_id=f"visitor-{rng.randrange(messages // 6)}", created_at=at,
                                              status=status, handed_off_at=at if status == "handed_off" else None))
            plans.append((at, min(rng.choice([1, 1, 2, 2, 3]), (messages - written) // 2 or 1)))
        with transaction.atomic():
            Conversation.objects.bulk_create(conversations)
            users, replies, ratings = [], [], []
            for conversation, (at, exchanges) in zip(conversations, plans, strict=True):
                for turn in range(exchanges):
                    asked_at = at + timedelta(seconds=40 * turn)
                    outcome = rng.choices(outcomes, weights)[0]
                    if outcome == "pending" and now - asked_at > timedelta(minutes=10):
                        outcome = "failed"
                    text = zipf_pick(rng, pools[conversation.knowledge_base_id])
                    intent = rng.choice(INTENTS[outcome])
                    user = Message(id=uuid.uuid4(), conversation=conversation, role="user", text=text,
                                   normalized_text=text.lower(), outcome=outcome, intent=intent, created_at=asked_at,
                                   reason="no_relevant_passage" if outcome == "refused" else "")
                    reply = Message(conversation=conversation, role="assistant", reply_to=user, outcome=outcome,
                                    text="An answer [1].", intent=intent, created_at=asked_at, reason=user.reason,
                                    completed_at=None if outcome == "pending" else asked_at,
                                    citations=[{"n": 1, "document_title": "Policy", "page": 2, "section": "",
                                                "snippet": "…", "document_id": 1, "chunk_id": 1}],
                                    **reply_fields(rng, outcome))
                    users.append(user)
                    replies.append(reply)
                    if outcome != "pending" and rng.random() < 0.10:
                        ratings.append(Feedback(message=reply, rating="down" if rng.random() < 0.3 else "up",
                                                created_at=asked_at, updated_at=asked_at))
            Message.objects.bulk_create(users, batch_size=BATCH)
            Message.objects.bulk_create(replies, batch_size=BATCH)
            Feedback.objects.bulk_create(ratings, batch_size=BATCH)
        written += len(users) + len(replies)
    return now


def seed_moe_jobs(jobs: int, rng: random.Random, now: datetime) -> None:
    from inference.models import GenerationJob

    layer_bias = [[rng.random() ** 2 + 0.05 for _ in range(16)] for _ in range(8)]
    rows = []
    for _ in range(jobs):
        tokens = rng.randint(200, 1500)
        counts = []
        for bias in layer_bias:
            total = sum(bias)
            counts.append([int(tokens * 2 * weight / total) for weight in bias])  # top_k = 2
        rows.append(GenerationJob(messages=[], temperature=0, top_p=1, max_new_tokens=256, status="done",
                                  model=MOE_MODEL, finished_at=now - timedelta(seconds=rng.uniform(0, DAYS * 86400)),
                                  expert_counts={"layers": list(range(8)), "num_experts": 16, "counts": counts}))
        if len(rows) == BATCH:
            GenerationJob.objects.bulk_create(rows)
            rows = []
    GenerationJob.objects.bulk_create(rows)


# --- the baseline: the dashboard's numbers straight from the message table ----------------------

def raw_dashboard(flt) -> dict:
    """Volume, outcomes, intents, tokens, feedback per bucket by GROUP BY, and latency percentiles
    from every reply's timings — what the dashboard would cost without rollups."""
    import numpy as np
    from django.db.models import Count, Q, Sum
    from django.db.models.functions import TruncDay, TruncHour

    from chat.models import Conversation, Feedback, Message

    trunc = TruncHour if flt.bucket == "hour" else TruncDay
    messages = Message.objects.filter(created_at__gte=flt.start, created_at__lt=flt.end)
    conversations = Conversation.objects.filter(created_at__gte=flt.start, created_at__lt=flt.end)
    if flt.knowledge_base_id:
        messages = messages.filter(conversation__knowledge_base_id=flt.knowledge_base_id)
        conversations = conversations.filter(knowledge_base_id=flt.knowledge_base_id)
    if flt.widget_key_id:
        messages = messages.filter(conversation__widget_key_id=flt.widget_key_id)
        conversations = conversations.filter(widget_key_id=flt.widget_key_id)
    questions = messages.filter(role="user").annotate(bucket=trunc("created_at"))
    outcome_counts = {f"o_{name}": Count("id", filter=Q(outcome=name)) for name in OUTCOME_WEIGHTS}
    result = {
        "volume": list(questions.values("bucket").annotate(n=Count("id"), **outcome_counts)),
        "intents": list(questions.values("bucket", "intent").annotate(n=Count("id"))),
        "conversations": list(conversations.annotate(bucket=trunc("created_at")).values("bucket")
                              .annotate(n=Count("id"))),
        "visitors": conversations.values("visitor_id").distinct().count(),
        "tokens": list(messages.filter(role="assistant").annotate(bucket=TruncDay("created_at"))
                       .values("bucket", "conversation__knowledge_base_id")
                       .annotate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"))),
        "feedback": list(Feedback.objects.filter(message__in=messages).annotate(bucket=trunc("message__created_at"))
                         .values("bucket", "rating").annotate(n=Count("id"))),
    }
    per_bucket: dict = {}
    for created_at, timings in (messages.filter(role="assistant", reply_to__isnull=False)
                                .exclude(outcome__in=["pending", "failed"]).values_list("created_at", "timings")
                                .iterator(chunk_size=5000)):
        key = created_at.replace(minute=0, second=0, microsecond=0)
        if flt.bucket == "day":
            key = key.replace(hour=0)
        first = timings.get("first_token_ms", timings.get("total_ms"))
        if first is not None:
            per_bucket.setdefault(key, []).append(first)
    result["ttft"] = {key: np.percentile(values, [50, 95, 99]) for key, values in per_bucket.items()}
    return result


# --- measuring ---------------------------------------------------------------------------------

def timed(function, repeats: int) -> list[float]:
    function()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def row(name: str, samples: list[float]) -> None:
    print(f"| {name} | {len(samples)} | {statistics.median(samples):.0f} | {p(samples, 0.95):.0f} |", flush=True)


def staff_client():
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    user = User.objects.filter(username="bench-staff").first() or User.objects.create_superuser(
        "bench-staff", password="x")  # every role (kefu.roles): the dashboard needs the analyst's
    client.force_login(user)
    return client


def render(client, url: str):
    def get():
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)

    return get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--moe-jobs", type=int, default=20_000)
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--postgres", action="store_true", help="a fresh PostgreSQL database instead of SQLite")
    parser.add_argument("--pg-database", default="kefu_bench_analytics",
                        help="with --postgres: the database to (re)create or reuse")
    parser.add_argument("--seed-only", action="store_true", help="seed, then stop (measure later with --reuse)")
    parser.add_argument("--pages-only", action="store_true",
                        help="with --reuse: keep the rollups (refresh only what is stale) and skip the raw baseline")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--reuse", type=Path, default=None,
                        help="the work dir of an earlier run (SQLite) or, with --postgres, its database: skip seeding")
    args = parser.parse_args()
    if args.pg_database and not args.pg_database.replace("_", "").isalnum():
        parser.error("--pg-database: letters, digits and underscores only")
    workdir = django_setup(args.postgres, args.reuse, args.pg_database)
    import torch

    torch.set_num_threads(1)  # the gaps page embeds questions; one thread on a shared machine
    from django.conf import settings
    from django.db import connection

    from analytics.filters import dashboard_filter_parse
    from analytics.rollups import rollup_refresh
    from chat.models import Message

    rng = random.Random(args.seed)
    print(f"database: {connection.vendor} ({workdir if connection.vendor == 'sqlite' else args.pg_database}); "
          f"cores: {os.cpu_count()}; load: {os.getloadavg()[0]:.1f}", flush=True)
    started = time.perf_counter()
    if args.reuse:
        from analytics.models import RollupState

        world = existing_world(rng)
        if not args.pages_only:
            RollupState.objects.all().delete()  # the first rollup below recomputes everything
        print(f"reusing {Message.objects.count():,} messages seeded by an earlier run", flush=True)
    else:
        world = seed_setup(rng)
        now = seed(world, args.messages, rng)
        seed_moe_jobs(args.moe_jobs, rng, now)
        print(f"seeded {Message.objects.count():,} messages and {args.moe_jobs:,} MoE generations in "
              f"{time.perf_counter() - started:.0f} s (peak RSS {peak_rss_mb():.0f} MB)", flush=True)
        if args.seed_only:
            print(f"seeded only; measure with --reuse {workdir}" + (" --postgres" if args.postgres else ""))
            return

    started = time.perf_counter()
    results = rollup_refresh()
    print(f"{'refresh' if args.pages_only else 'first rollup'}: {time.perf_counter() - started:.1f} s, {sum(r.hourly_rows for r in results):,} hourly rows, "
          f"{sum(r.question_rows for r in results):,} question rows, {sum(r.expert_rows for r in results):,} "
          f"expert rows (peak RSS {peak_rss_mb():.0f} MB)", flush=True)
    seed(world, 2000, rng, span=timedelta(minutes=5))  # the newest few minutes arrive
    started = time.perf_counter()
    rollup_refresh()
    print(f"incremental rollup after 2,000 new messages: {(time.perf_counter() - started) * 1000:.0f} ms", flush=True)

    kb = world["bases"][0]
    key = world["keys"][kb.pk][0]
    client = staff_client()
    pages = [
        ("dashboard 24h", "/staff/?range=24h"), ("dashboard 7d", "/staff/?range=7d"),
        ("dashboard 30d", "/staff/?range=30d"), ("dashboard 30d, one base", f"/staff/?range=30d&kb={kb.pk}"),
        ("dashboard 7d, one widget key", f"/staff/?range=7d&key={key.pk}"),
        ("top questions 30d", "/staff/questions/?range=30d"), ("down-rated 30d", "/staff/feedback/?range=30d"),
        ("hand-off inbox", "/staff/inbox/"), ("knowledge gaps 7d (500 newest, embeddings cached)", "/staff/gaps/?range=7d"),
    ]
    # Reads only, as in service mode where beat refreshes; the embedded refresh-on-open is its own row.
    settings.KEFU_ANALYTICS_REFRESH_AFTER_S = 10**9
    print("\n| page | renders | p50 ms | p95 ms |\n|---|---|---|---|")
    for name, url in pages:
        row(name, timed(render(client, url), args.renders))
    settings.KEFU_ANALYTICS_REFRESH_AFTER_S = 0
    row("dashboard 24h, embedded refresh on every open", timed(render(client, "/staff/?range=24h"), args.renders))

    if args.pages_only:
        print(f"\npeak RSS {peak_rss_mb():.0f} MB (raw baseline skipped: --pages-only)", flush=True)
        return
    print("\n| raw-query baseline (same numbers from the message table) | runs | p50 ms | p95 ms |\n|---|---|---|---|")
    for name, query in [("24h", {"range": "24h"}), ("7d", {"range": "7d"}), ("30d", {"range": "30d"})]:
        flt = dashboard_filter_parse(query)
        row(f"raw {name}", timed(lambda flt=flt: raw_dashboard(flt), max(3, args.renders // 6)))
    print(f"\npeak RSS {peak_rss_mb():.0f} MB", flush=True)


if __name__ == "__main__":
    main()
