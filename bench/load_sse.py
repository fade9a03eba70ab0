"""Load on loopback: 200 concurrent SSE streams against ONE web process in service mode, or a soak.

    .venv/bin/python bench/load_sse.py [--streams 200] [--generated-share 0.1] [--direct-share 0.2]
    .venv/bin/python bench/load_sse.py --soak 600 --rate 2

Sets service mode up itself: a fresh PostgreSQL database (``--database-url``, dropped and
created), a Redis DB (``--redis-url``, EMPTIED with FLUSHDB first: give it a DB of its own) and
a data dir; migrates; builds a knowledge base from the first ``--rows`` rows of the real
zaragoza FAQ; creates a widget key; starts one uvicorn process and the ingest and inference
Celery workers (the inference worker loads the bundled SmolLM2-135M). Then:

- burst (default): warms the answer cache with some FAQ questions, runs a baseline of the same
  kind of mix at concurrency 1, then ``--streams`` asks all at once (POST then GET the stream,
  with the same lean keep-alive client, :mod:`bench.load_http`). Asks: warmed FAQ questions (cache hits), fresh FAQ questions (direct answers),
  and two-part knowledge questions that miss both and are generated for real (answers capped
  at ``--answer-tokens``). Prints per outcome p50/p95/max time to first event and to the
  closing event, client-side errors by type, and c=1 vs c=N.
- ``--soak S --rate R``: R asks per second for S seconds (open loop), RSS of the web process and
  each worker at start, every minute and at the end; fails when memory grows without bound:
  growth over the second half (median of the last three samples minus the median of the three
  around half-time) above max(32 MB, 5 %) for any process.

Both then ASSERT, from the database and the job streams: no lost message (every 202 has a stored
assistant message with a final outcome, matching what its stream said) and no duplicated or
missing token in any stream (token ids == the job stream's ids, texts == the done answer).
Exit 1 on any of those (or unbounded memory), never on timings.

The client runs on the same machine (it competes for the CPU with the server). Budget: setup
~1-2 min (model load), burst ~3-5 min on 2 busy cores; soak S seconds plus setup.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import load_core

GROWTH_FLOOR_MB = 32.0
GROWTH_SHARE = 0.05


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/kefu_load",
                        help="PostgreSQL database to DROP and create for the run")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="Redis DB to FLUSHDB and use")
    parser.add_argument("--data-dir", default=str(load_core.ROOT / ".test-data" / "load"))
    parser.add_argument("--rows", type=int, default=200, help="zaragoza FAQ rows in the knowledge base")
    parser.add_argument("--warm", type=int, default=40, help="FAQ questions put in the answer cache first")
    parser.add_argument("--streams", type=int, default=200, help="concurrent streams of the burst")
    parser.add_argument("--generated-share", type=float, default=0.1)
    parser.add_argument("--direct-share", type=float, default=0.2)
    parser.add_argument("--baseline", type=int, default=-1,
                        help="asks of the c=1 baseline (default: as many as --streams; 0: none)")
    parser.add_argument("--answer-tokens", type=int, default=32, help="cap on generated answers")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="KEFU_TORCH_THREADS of the generator (1 helps on a CPU other jobs share)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one stream may take")
    parser.add_argument("--soak", type=float, default=0.0, help="soak for this many seconds instead of a burst")
    parser.add_argument("--rate", type=float, default=2.0, help="soak: asks per second")
    parser.add_argument("--soak-generated-share", type=float, default=0.02,
                        help="soak: share of generated asks (the CPU model answers a few per minute)")
    parser.add_argument("--soak-direct-share", type=float, default=0.07)
    parser.add_argument("--burst-first", action="store_true",
                        help="with --soak: run the burst (and its baseline) first on the same stack and lock hold")
    parser.add_argument("--lock", default="", help="take this flock (e.g. /tmp/kefu-bench.lock) once the stack is "
                                                   "ready, for the measured part only (setup runs outside it)")
    parser.add_argument("--web-workers", type=int, default=1,
                        help="web processes behind the one port (uvicorn --workers); RSS and CPU add theirs up")
    parser.add_argument("--always-stream", action="store_true",
                        help="GET the stream of every reply, also one the POST carried whole in its `done`")
    parser.add_argument("--sample-every", type=float, default=10.0, help="soak: seconds between RSS samples")
    return parser.parse_args(argv)


def database_recreate(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def redis_db_empty(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def data_dir_empty(path: Path) -> None:
    """Remove everything but ``models/`` (the SmolLM2 GGUF converted once to safetensors: minutes to redo)."""
    import shutil

    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.name != "models":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def django_setup(args: argparse.Namespace) -> None:
    os.environ.update({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                       "KEFU_DATA_DIR": args.data_dir, "HF_HUB_OFFLINE": "1", "KEFU_WARMUP": "0",
                       "KEFU_KB_RESUME_ON_START": "0", "LOG_LEVEL": "WARNING",
                       "DJANGO_SETTINGS_MODULE": "kefu.settings"})
    sys.path.insert(0, str(load_core.ROOT))
    import django

    django.setup()


def prepare(args: argparse.Namespace) -> tuple[str, load_core.QuestionPools]:
    """Fresh database, Redis DB and data dir; migrated; the FAQ base and a widget key."""
    from django.core.management import call_command

    started = time.perf_counter()
    database_recreate(args.database_url)
    redis_db_empty(args.redis_url)
    data_dir_empty(Path(args.data_dir))
    django_setup(args)
    call_command("migrate", "--noinput", verbosity=0)
    rows = load_core.faq_rows(args.rows)
    kb = load_core.faq_base_build(rows=rows)
    key = load_core.widget_key_create(kb)
    print(f"setup: {len(rows)} FAQ rows ingested and indexed in {time.perf_counter() - started:.0f} s", flush=True)
    pools = load_core.question_pools(rows, warm=args.warm, knowledge=knowledge_needed(args))
    print(f"questions: {len(pools.warm)} to warm, {len(pools.fresh)} fresh FAQ, {len(pools.knowledge)} knowledge "
          f"(below {load_core.KNOWLEDGE_MAX_SIMILARITY} cosine to every FAQ question)", flush=True)
    return key, pools


def knowledge_needed(args: argparse.Namespace) -> int:
    """Generated asks of the whole run, plus one for the warm-up."""
    soak = soak_counts(args)[0] if args.soak else 0
    if args.soak and not args.burst_first:
        return soak + 1
    return mix_counts(baseline_size(args), args)[0] + mix_counts(args.streams, args)[0] + soak + 1


def baseline_size(args: argparse.Namespace) -> int:
    return args.streams if args.baseline < 0 else args.baseline


def soak_counts(args: argparse.Namespace) -> tuple[int, int]:
    count = int(args.soak * args.rate)
    return round(count * args.soak_generated_share), round(count * args.soak_direct_share)


def warm_up(stack: load_core.Stack, key: str, pools: load_core.QuestionPools) -> None:
    """Every warm FAQ question once (they enter the answer cache) and one generated answer (first-run costs)."""
    asks = [load_core.Ask(q, "warm") for q in pools.warm]
    asks.append(load_core.Ask(pools.knowledge[-1], "warm"))
    started = time.perf_counter()
    results = load_core.run_streams(stack.base, key, asks, concurrency=4)
    outcomes = load_core.Counter(r.outcome if not r.error else r.error for r in results)
    print(f"warm-up: {len(asks)} asks in {time.perf_counter() - started:.0f} s: {dict(outcomes)}", flush=True)


def mix_counts(total: int, args: argparse.Namespace) -> tuple[int, int]:
    return round(total * args.generated_share), round(total * args.direct_share)


def timed_run(label: str, stack, key: str, asks, concurrency: int, timeout_s: float):
    cpu_before = stack.cpu_seconds()
    started = time.perf_counter()
    results = load_core.run_streams(stack.base, key, asks, concurrency=concurrency, timeout_s=timeout_s)
    summary = load_core.summarize(label, results, time.perf_counter() - started)
    cpu = {name: seconds - cpu_before[name] for name, seconds in stack.cpu_seconds().items()}
    print(load_core.summary_table(summary), flush=True)
    print("CPU per ask, ms (user + system): " + ", ".join(f"{name} {1000 * seconds / max(1, len(results)):.1f}"
                                                          for name, seconds in cpu.items()), flush=True)
    return results, summary


def burst(args: argparse.Namespace, stack, key: str, pools) -> tuple[list, tuple[int, int]]:
    """The c=1 baseline, then all streams at once; returns the results and the (generated, direct) questions used."""
    baseline_count = baseline_size(args)
    results = []
    baseline = None
    skip = (0, 0)
    if baseline_count:
        generated, direct = mix_counts(baseline_count, args)
        asks = load_core.question_mix(pools, count=baseline_count, generated=generated, direct=direct)
        skip = (generated, direct)
        base_results, baseline = timed_run("baseline, concurrency 1", stack, key, asks, 1, args.timeout)
        results += base_results
    generated, direct = mix_counts(args.streams, args)
    asks = load_core.question_mix(pools, count=args.streams, generated=generated, direct=direct, skip=skip)
    print(f"\nburst: {args.streams} streams at once ({generated} generated, {direct} direct, "
          f"{args.streams - generated - direct} cache)", flush=True)
    load_results, loaded = timed_run(f"concurrency {args.streams}", stack, key, asks, args.streams, args.timeout)
    results += load_results
    if baseline is not None:
        print("\n" + load_core.comparison_table(baseline, loaded, args.streams))
    return results, (skip[0] + generated, skip[1] + direct)


def soak_asks(pools, args: argparse.Namespace, skip: tuple[int, int]) -> list:
    generated, direct = soak_counts(args)
    return load_core.question_mix(pools, count=int(args.soak * args.rate), generated=generated,
                                  direct=min(direct, len(pools.fresh) - skip[1]), skip=skip)


def soak(args: argparse.Namespace, stack, key: str, pools, skip: tuple[int, int]) -> tuple[list, bool]:
    asks = soak_asks(pools, args, skip)
    samples: list[tuple[float, dict[str, float]]] = [(0.0, stack.rss_mb())]
    print(f"\nsoak: {len(asks)} asks at {args.rate}/s for {args.soak:.0f} s", flush=True)
    print(rss_line(*samples[0]), flush=True)

    def on_tick(elapsed: float) -> None:
        samples.append((elapsed, stack.rss_mb()))
        if int(elapsed // 60) != int(samples[-2][0] // 60):
            print(rss_line(*samples[-1]), flush=True)

    started = time.perf_counter()
    results = load_core.run_client(load_core.run_rate_async(stack.base, key, asks, rate=args.rate, max_in_flight=400,
                                                   timeout_s=args.timeout, on_tick=on_tick,
                                                   tick_s=args.sample_every))
    samples.append((time.perf_counter() - started, stack.rss_mb()))
    print(rss_line(*samples[-1]) + "  (end)", flush=True)
    print(load_core.summary_table(load_core.summarize(f"soak at {args.rate}/s", results,
                                                      time.perf_counter() - started)))
    return results, memory_bounded(samples)


def rss_line(elapsed: float, rss: dict[str, float]) -> str:
    return f"t={elapsed:6.0f} s  RSS MB: " + "  ".join(f"{name} {mb:7.1f}" for name, mb in rss.items())


def memory_bounded(samples: list[tuple[float, dict[str, float]]]) -> bool:
    """Growth over the second half (median of the last 3 samples − median of the 3 around half-time)
    must stay under max(32 MB, 5 % of the half-time RSS) for every process."""
    import statistics

    end_time = samples[-1][0]
    around_half = sorted(samples, key=lambda s: abs(s[0] - end_time / 2))[:3]
    last = samples[-3:]
    ok = True
    print("\n| process | RSS start MB | RSS half MB | RSS end MB | growth 2nd half MB | limit MB | bounded |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in samples[0][1]:
        half = statistics.median(s[1][name] for s in around_half)
        end = statistics.median(s[1][name] for s in last)
        limit = max(GROWTH_FLOOR_MB, GROWTH_SHARE * half)
        bounded = end - half <= limit
        ok &= bounded
        print(f"| {name} | {samples[0][1][name]:.0f} | {half:.0f} | {end:.0f} | {end - half:+.1f} | {limit:.0f} | "
              f"{'yes' if bounded else 'NO'} |")
    return ok


def lock_take(path: str) -> None:
    """Wait for the shared benchmark lock; held until this process exits."""
    import fcntl

    waited = time.perf_counter()
    global _lock_file
    _lock_file = open(path, "a")  # noqa: SIM115 - kept open (locked) for the rest of the run
    fcntl.flock(_lock_file, fcntl.LOCK_EX)
    print(f"lock {path} taken after {time.perf_counter() - waited:.0f} s; {uptime()}", flush=True)


_lock_file = None


def uptime() -> str:
    import subprocess

    return time.strftime("%H:%M:%S UTC", time.gmtime()) + " " + subprocess.run(
        ["uptime"], capture_output=True, text=True).stdout.strip().split("  ")[-1]


def report_verdict(verdict: load_core.Verdict) -> None:
    print(f"\nchecked {verdict.streams_checked} accepted asks: {len(verdict.lost)} lost messages, "
          f"{len(verdict.token_problems)} streams with duplicated/missing tokens")
    for line in (verdict.lost + verdict.token_problems)[:30]:
        print("  " + line)


def main(argv=None) -> int:
    args = parse_args(argv)
    load_core.ALWAYS_STREAM = args.always_stream
    key, pools = prepare(args)
    config = load_core.StackConfig(database_url=args.database_url, redis_url=args.redis_url,
                                   data_dir=Path(args.data_dir), answer_tokens=args.answer_tokens,
                                   torch_threads=args.torch_threads, web_workers=args.web_workers)
    started = time.perf_counter()
    with load_core.Stack(config) as stack:
        print(f"stack ready in {time.perf_counter() - started:.0f} s: web {stack.base} ({args.web_workers} process"
              f"{'es' if args.web_workers > 1 else ''}), "
              f"ingest worker, inference worker (model loaded)", flush=True)
        if args.lock:
            lock_take(args.lock)
        warm_up(stack, key, pools)
        memory_ok, results, used = True, [], (0, 0)
        if not args.soak or args.burst_first:
            results, used = burst(args, stack, key, pools)
        if args.soak:
            soak_results, memory_ok = soak(args, stack, key, pools, used)
            results += soak_results
        verdict = load_core.verify(results)
    report_verdict(verdict)
    print(f"end: {uptime()}")
    if not memory_ok:
        print("FAIL: memory grew over the second half of the soak beyond the limit above")
    if not verdict.ok:
        print("FAIL: lost messages or broken streams (see above)")
    return 0 if verdict.ok and memory_ok else 1


if __name__ == "__main__":
    sys.exit(main())
