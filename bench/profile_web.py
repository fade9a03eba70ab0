"""Where a burst's time goes in the web process: py-spy samples uvicorn while cached and direct asks arrive.

    .venv/bin/python bench/profile_web.py [--asks 400] [--concurrency 200] [--direct-share 0.2]

The same stack as ``bench/load_sse.py`` (service mode: a fresh PostgreSQL database and Redis DB, one
uvicorn process, the ingest and inference workers, the zaragoza FAQ base). After the warm-up, ``py-spy
record`` attaches to the web process (all threads, idle samples dropped) for the whole burst of cached
and direct asks, and the samples are summarised:

- by stage of a request: the guard and rate limit, the cache lookup, embedding, search, the decision,
  the database writes, the stream, Django's middleware and the ASGI server;
- the top functions by inclusive and by self time.

It prints the burst's throughput beside the profile, so the two are read together. The raw collapsed
stacks stay in ``--out`` for a flame graph. No generated asks: their cost is the model's, elsewhere.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import load_sse  # this script's neighbour: bench/ is the script's directory, first on sys.path

from bench import load_core

# The stage a sample belongs to: the first of these found in its stack, innermost first.
STAGES = (
    ("embedding", ("sentence_transformers", "kb/embedding.py", "torch/")),
    ("search", ("kb/search.py", "kb/retrieval", "faiss", "rank_bm25")),
    ("cache lookup", ("chat/pipeline/cache.py",)),
    ("intent", ("chat/pipeline/intent.py",)),
    ("decide / extract", ("chat/pipeline/decide.py", "chat/pipeline/extractive.py", "answerability.py")),
    ("guard / rate limit", ("chat/pipeline/guard.py",)),
    ("db writes / reads", ("django/db/", "psycopg")),
    ("redis", ("redis/", "django/core/cache")),
    ("sse stream", ("chat/sse.py",)),
    ("metrics", ("prometheus_client",)),
    ("django request", ("django/",)),
    ("asgi server", ("uvicorn", "h11", "httptools", "asyncio", "asgiref")),
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/kefu_load")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--data-dir", default=str(load_core.ROOT / ".test-data" / "load"))
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--warm", type=int, default=40)
    parser.add_argument("--asks", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--direct-share", type=float, default=0.2)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--out", default="/tmp/kefu-web-profile.txt", help="collapsed stacks of the burst")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--web-workers", type=int, default=1, help="uvicorn --workers (py-spy samples the first)")
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL (Python's CPU; torch and I/O waits drop out)")
    return parser.parse_args(argv)


def py_spy() -> str:
    """py-spy beside this Python (``.venv/bin/pip install py-spy``), else the one on PATH."""
    path = Path(sys.executable).with_name("py-spy")
    found = str(path) if path.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def stage_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, needles in STAGES:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def collapsed(path: Path) -> list[tuple[str, int]]:
    rows = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            rows.append((stack, int(count)))
    return rows


def function_of(frame: str) -> str:
    """``name (path/to/file.py:line)`` → ``name (file.py)``, the unit the tables count."""
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 2)
    return f"{name} ({'/'.join(file[-2:])})"


def summary(rows: list[tuple[str, int]], top: int) -> str:
    total = sum(count for _, count in rows) or 1
    stages, inclusive, own = Counter(), Counter(), Counter()
    for stack, count in rows:
        stages[stage_of(stack)] += count
        frames = stack.split(";")
        for name in {function_of(frame) for frame in frames}:
            inclusive[name] += count
        own[function_of(frames[-1])] += count
    lines = [f"{total} samples of busy threads", "", "| stage | share |", "|---|---:|"]
    lines += [f"| {name} | {count / total:.1%} |" for name, count in stages.most_common()]
    lines += ["", "| function (inclusive) | share |", "|---|---:|"]
    lines += [f"| `{name}` | {count / total:.1%} |" for name, count in inclusive.most_common(top)]
    lines += ["", "| function (self) | share |", "|---|---:|"]
    lines += [f"| `{name}` | {count / total:.1%} |" for name, count in own.most_common(top)]
    return "\n".join(lines)


def asks_of(pools, args: argparse.Namespace) -> list:
    direct = min(round(args.asks * args.direct_share), len(pools.fresh))
    return load_core.question_mix(pools, count=args.asks, generated=0, direct=direct)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.soak, args.burst_first, args.streams, args.baseline, args.generated_share = 0, False, 0, 0, 0.0
    key, pools = load_sse.prepare(args)
    config = load_core.StackConfig(database_url=args.database_url, redis_url=args.redis_url,
                                   data_dir=Path(args.data_dir), web_workers=args.web_workers)
    with load_core.Stack(config) as stack:
        load_sse.warm_up(stack, key, pools)
        web = next(child for child in stack.children if child.name == "web")
        out = Path(args.out)
        spy = subprocess.Popen([py_spy(), "record", "--pid", str(web.process.pid), "--subprocesses", "--rate", str(args.rate),
                                "--format", "raw", "--output", str(out), "--threads", "--nonblocking", *(["--gil"] if args.gil else [])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(2)  # attached before the first ask
        cpu_before = stack.cpu_seconds()
        started = time.perf_counter()
        results = load_core.run_streams(stack.base, key, asks_of(pools, args), concurrency=args.concurrency)
        wall = time.perf_counter() - started
        cpu = {name: after - cpu_before[name] for name, after in stack.cpu_seconds().items()}
        spy.send_signal(2)  # SIGINT: py-spy writes what it sampled
        spy.wait(timeout=60)
    print(load_core.summary_table(load_core.summarize(f"profiled burst, concurrency {args.concurrency}",
                                                      results, wall)))
    print(f"\nCPU per ask (ms, user+system, {len(results)} asks): "
          + ", ".join(f"{name} {1000 * seconds / len(results):.1f}" for name, seconds in cpu.items()))
    if not out.exists():
        print(f"py-spy wrote nothing: {spy.stderr.read().decode()[-2000:]}")
        return 1
    print("\n" + summary(collapsed(out), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
