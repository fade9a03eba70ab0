"""Ingestion throughput end to end: upload → ingest task → ready and searchable, batched vs one by one.

    .venv/bin/python bench/kb_ingest.py [--sets zaragoza,debian-en] [--limit N] [--threads 2]

Each run uploads the files into a fresh knowledge base through ``kb.services.document_upload``
with ``enqueue=True``: as in the embedded product, the ``kb.ingest_document`` tasks run in the
``ingest`` thread pool of this process (uploads and ingestion overlap as they would). The clock
stops when every document is ready or failed, the active index holds every stored chunk and a
search of one document's own question returns it.

- **baseline, one by one**: ``KEFU_KB_INGEST_BATCH=1`` — each task ingests its own document (one
  ``encode`` per document), the build waits for the last one (the path before batching).
- **batched**: the default ``KEFU_KB_INGEST_BATCH`` — a task takes the queued documents of its base
  along, embeds all their chunks in length-sorted batches of ``KEFU_KB_EMBED_BATCH`` and builds once.
- **embedder alone**: the same chunk texts in one ``embed_texts`` call — the ceiling for both.

Both runs use the same texts in the same process; the order alternates (baseline, batched,
batched, baseline) and each method's best and mean are printed. torch runs on ``--threads``
intra-op threads (2 = both cores of the target machine).
Budget: ~4 × (chunks / rate) seconds; < 1 GB RAM.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kb_datasets  # noqa: E402


@dataclass(frozen=True)
class Run:
    method: str
    documents: int
    chunks: int
    seconds: float
    builds: int
    failed: int

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="zaragoza")
    parser.add_argument("--limit", type=int, default=0, help="first N files of each set (0 = all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="baseline/batched pairs per set")
    args = parser.parse_args()
    os.environ["KEFU_BENCH_THREADS"] = str(args.threads)
    kb_datasets.django_setup()
    from kb.embedding import embed_texts

    embed_texts(["warm up the embedder"])
    print(f"torch threads: {args.threads}; KEFU_KB_INGEST_BATCH for 'batched': {batch_setting()}")
    print("| set | method | documents | chunks | index builds | seconds | chunks/s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        files, probe = dataset(name, args.limit)
        runs: list[Run] = []
        pair = ["baseline, one by one", "batched"]
        order = [method for r in range(args.rounds) for method in (pair if r % 2 == 0 else pair[::-1])]  # ABBA
        for number, method in enumerate(order):
            runs.append(ingest_run(name, method, files, probe, number))
            print_run(name, runs[-1])
        summarise(name, runs)
        embedder_alone(name, runs[-1].chunks)
        sys.stdout.flush()


def batch_setting() -> int:
    from django.conf import settings

    return settings.KEFU_KB_INGEST_BATCH


def dataset(name: str, limit: int) -> tuple[list[tuple[str, bytes]], str]:
    """(filename, bytes) files and a query that must find the first one."""
    if name == "zaragoza":
        rows = kb_datasets.zaragoza_rows()
        rows = rows[:limit] if limit else rows
        return [(f"{r['id']}.txt", r["a"].encode()) for r in rows], rows[0]["q"]
    if name == "debian-en":
        paths = sorted(kb_datasets.DEBIAN_EN.glob("*.en.html"))
        paths = paths[:limit] if limit else paths
        return [(p.name, p.read_bytes()) for p in paths], "What is Debian GNU/Linux?"
    raise SystemExit(f"unknown set {name!r}")


def ingest_run(name: str, method: str, files, probe: str, number: int) -> Run:
    from django.conf import settings

    from kb.models import Chunk, Document, IndexVersion
    from kb.services import document_upload, knowledge_base_create
    from kefu.background import drain

    batch = 1 if method.startswith("baseline") else batch_setting()
    previous = settings.KEFU_KB_INGEST_BATCH
    settings.KEFU_KB_INGEST_BATCH = batch
    try:
        kb = knowledge_base_create(name=f"ingest {name} {number}")
        started = time.perf_counter()
        for filename, data in files:
            document_upload(knowledge_base=kb, filename=filename, data=data, enqueue=True)
        wait_until_searchable(kb, probe)
        seconds = time.perf_counter() - started
        drain()
    finally:
        settings.KEFU_KB_INGEST_BATCH = previous
    documents = Document.objects.filter(knowledge_base=kb)
    return Run(method, documents.count(), Chunk.objects.filter(document__knowledge_base=kb).count(), seconds,
               IndexVersion.objects.filter(knowledge_base=kb).count(),
               documents.filter(status=Document.Status.FAILED).count())


def wait_until_searchable(kb, probe: str, timeout: float = 3600.0) -> None:
    """Every document finished, the active index holds every chunk, and a search answers."""
    from kb.models import Chunk, Document
    from kb.search import hybrid

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unfinished = Document.objects.filter(knowledge_base=kb, status__in=Document.ACTIVE_STATUSES).exists()
        if not unfinished:
            kb.refresh_from_db()
            stored = Chunk.objects.filter(document__knowledge_base=kb).count()
            if kb.active_index is not None and kb.active_index.chunk_count == stored and hybrid(kb, probe, 1):
                return
        time.sleep(0.05)
    raise SystemExit(f"{kb.name}: not searchable after {timeout:.0f} s")


def print_run(name: str, run: Run) -> None:
    failed = f" ({run.failed} failed)" if run.failed else ""
    print(f"| {name} | {run.method}{failed} | {run.documents} | {run.chunks} | {run.builds} | "
          f"{run.seconds:.1f} | {run.rate:.1f} |")


def summarise(name: str, runs: list[Run]) -> None:
    by_method: dict[str, list[float]] = {}
    for run in runs:
        by_method.setdefault(run.method, []).append(run.rate)
    for method, rates in by_method.items():
        print(f"| {name} | **{method}: best / mean** | | | | | **{max(rates):.1f}** / {statistics.mean(rates):.1f} |")
    base, batched = by_method.get("baseline, one by one"), by_method.get("batched")
    if base and batched:
        print(f"| {name} | speed-up (mean batched / mean baseline) | | | | | "
              f"{statistics.mean(batched) / statistics.mean(base):.2f}× |")


def embedder_alone(name: str, chunks: int) -> None:
    """The same chunk texts in one embed_texts call: what the model alone does here."""
    from django.conf import settings

    from kb.embedding import embed_texts
    from kb.models import Chunk

    texts = list(Chunk.objects.order_by("-id").values_list("text", flat=True)[:chunks])  # the last run's chunks
    texts.sort(key=len)
    started = time.perf_counter()
    embed_texts(texts, batch_size=settings.KEFU_KB_EMBED_BATCH)
    seconds = time.perf_counter() - started
    print(f"| {name} | embedder alone (one length-sorted embed_texts call) | | {len(texts)} | | "
          f"{seconds:.1f} | {len(texts) / seconds:.1f} |")


if __name__ == "__main__":
    main()
