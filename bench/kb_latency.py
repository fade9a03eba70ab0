"""Search latency at 10k and 100k chunks: kb's retrievers vs the naive baseline, in one run.

    .venv/bin/python bench/kb_latency.py [--sizes 10000,100000] [--queries 200]
    .venv/bin/python bench/kb_latency.py --backend milvus [--sizes 10000,100000] [--milvus-uri URI]

``--backend milvus`` compares the two search backends through kb itself: the same stored chunks are
indexed by ``index_build`` on the local backend, then on Milvus (rows/s of each build: "ingestion"),
and a fresh "web" process (Django + torch, as a web worker has them) loads the active version and
answers the queries; it reports hybrid p50/p95 (``candidates`` + fusion, query vectors given) and
its RSS. Milvus is Milvus Lite served by ``python -m milvus_lite server`` as a separate process
(its RSS reported apart), unless ``--milvus-uri`` names a Milvus server. Milvus Lite is a
pure-Python engine for tests and one machine: its latencies say nothing of a Milvus cluster's.

Corpus: generated ~40-word passages over a Zipf-distributed 20k-word vocabulary (scale, not
meaning) with random unit 384-d vectors. Everything runs on one thread (torch, FAISS/OpenMP).
Rows:
- kb bm25: ``analyze`` + sparse-matrix BM25 top-100
- kb dense: FAISS top-100 (flat below KEFU_KB_HNSW_THRESHOLD, HNSW above — the index kb builds)
- kb hybrid: both + row→item collapse + weighted RRF (``kb.retrieval.search`` functions)
- baseline: rank_bm25 ``get_scores`` + argsort top-100, FAISS flat top-100, RRF
Query encoding (MiniLM, the same for both) and DB hydration are reported separately, and
"add one document to a 10k-chunk base" is timed through the real ingestion path.

Budget: ~4 min and ~2 GB RAM at 100k (rank_bm25's dict-per-document index dominates).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kb_datasets  # noqa: E402

DIM = 384
DEPTH = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline-queries", type=int, default=50, help="rank_bm25 is slow; fewer queries")
    parser.add_argument("--backend", choices=("", "milvus"), default="",
                        help="milvus: compare the local and the Milvus search backend through kb")
    parser.add_argument("--milvus-uri", default="", help="a Milvus server (default: Milvus Lite, its own process)")
    parser.add_argument("--serve-queries", type=int, default=0, help=argparse.SUPPRESS)  # the child "web" process
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_queries:
        serve_queries(args.workdir, args.serve_queries, args.queries)
        return
    if args.backend == "milvus":
        compare_backends([int(s) for s in args.sizes.split(",")], args.queries, args.milvus_uri)
        return
    kb_datasets.django_setup()
    import faiss

    faiss.omp_set_num_threads(1)
    print("| chunks | method | p50 ms | p95 ms | build s |")
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        bench_size(size, args.queries, args.baseline_queries)
        sys.stdout.flush()
    bench_query_encoding(args.queries)
    bench_add_document(10_000)


def corpus(size: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"{w}{i}" for i, w in enumerate(["term", "word", "part", "item", "code"] * 4000)])
    weights = 1 / np.arange(1, len(vocabulary) + 1) ** 1.05
    weights /= weights.sum()
    lengths = rng.integers(25, 55, size)
    words = rng.choice(vocabulary, size=int(lengths.sum()), p=weights)
    texts, start = [], 0
    for length in lengths:
        texts.append(" ".join(words[start:start + length]))
        start += length
    vectors = rng.standard_normal((size, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = [" ".join(rng.choice(vocabulary[:5000], size=rng.integers(3, 8))) for _ in range(400)]
    return texts, vectors, queries


def percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


def timed(fn, inputs) -> list[float]:
    out = []
    for item in inputs:
        started = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - started) * 1000)
    return out


def bench_size(size: int, n_queries: int, n_baseline: int) -> None:
    import faiss
    from django.conf import settings
    from rank_bm25 import BM25Okapi

    from kb.indexing import ROW_CHUNK, IndexRows
    from kb.retrieval.analyzer import analyze
    from kb.retrieval.bm25 import build_bm25
    from kb.retrieval.dense import build_dense
    from kb.retrieval.fusion import weighted_rrf
    from kb.retrieval.search import Candidates, collapse, fuse

    texts, vectors, queries = corpus(size)
    rng = np.random.default_rng(1)
    qvecs = rng.standard_normal((len(queries), DIM)).astype(np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    items = list(zip(queries, qvecs, strict=True))[:n_queries]

    started = time.perf_counter()
    bm25 = build_bm25([analyze(t) for t in texts])
    bm25_build = time.perf_counter() - started
    started = time.perf_counter()
    dense = build_dense(vectors, dimension=DIM, hnsw_threshold=settings.KEFU_KB_HNSW_THRESHOLD)
    dense_build = time.perf_counter() - started
    rows = IndexRows(np.full(size, ROW_CHUNK, dtype=np.int8), np.arange(size, dtype=np.int64))

    def kb_hybrid(item):
        query, vector = item
        b_rows, b_scores = bm25.top(analyze(query), DEPTH)
        d_rows, d_scores = dense.top(vector, DEPTH)
        found = Candidates(collapse(rows, b_rows, b_scores), collapse(rows, d_rows, d_scores), vector)
        return fuse(found, dense_weight=0.7, rrf_k=60, limit=10)

    report(size, "kb bm25 (sparse matrix)", timed(lambda it: bm25.top(analyze(it[0]), DEPTH), items), bm25_build)
    report(size, f"kb dense (FAISS {dense.kind})", timed(lambda it: dense.top(it[1], DEPTH), items), dense_build)
    report(size, "kb hybrid (bm25 ∥ dense → RRF)", timed(kb_hybrid, items), bm25_build + dense_build)

    started = time.perf_counter()
    tokenised = [t.lower().split() for t in texts]
    naive_bm25 = BM25Okapi(tokenised)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    naive_build = time.perf_counter() - started

    def baseline(item):
        query, vector = item
        scores = naive_bm25.get_scores(query.lower().split())
        top = np.argsort(-scores)[:DEPTH]
        _, ids = flat.search(vector.reshape(1, -1), DEPTH)
        return weighted_rrf({"bm25": [(int(i), 0.0) for i in top], "dense": [(int(i), 0.0) for i in ids[0]]},
                            weights={"bm25": 0.5, "dense": 0.5}, k=60, limit=10)

    baseline_items = items[:n_baseline]
    report(size, "baseline dense (FAISS flat)", timed(lambda it: flat.search(it[1].reshape(1, -1), DEPTH),
                                                      items), None)
    report(size, "baseline hybrid (rank_bm25 get_scores + flat + RRF)", timed(baseline, baseline_items),
           naive_build)


def report(size: int, method: str, samples: list[float], build: float | None) -> None:
    p50, p95 = percentiles(samples)
    build_text = f"{build:.1f}" if build is not None else ""
    print(f"| {size:,} | {method} | {p50:.2f} | {p95:.2f} | {build_text} |")


def bench_query_encoding(n: int) -> None:
    from kb.embedding import embed_query

    embed_query("warm up")
    real = [r["q"] for r in kb_datasets.zaragoza_rows()[:n]]
    p50, p95 = percentiles(timed(embed_query, real))
    print(f"| — | query encoding (MiniLM, 1 thread, real questions) | {p50:.2f} | {p95:.2f} | |")


def bench_add_document(size: int) -> None:
    """A base with ``size`` stored chunks gets one more document: seconds until it is searchable."""
    from kb.indexing import index_build
    from kb.ingestion import document_ingest
    from kb.models import KnowledgeBase
    from kb.search import hybrid
    from kb.services import document_upload

    kb = KnowledgeBase.objects.get(pk=stored_base(size, seed=5, name=f"latency {size}"))

    index_build(knowledge_base_id=kb.pk)
    started = time.perf_counter()
    text = b"The lighthouse keeper's manual explains how to replace the lamp in the lantern room."
    document = document_upload(knowledge_base=kb, filename="lighthouse.txt", data=text, enqueue=False).document
    document = document_ingest(document_id=document.pk)
    hits = hybrid(kb, "replace the lighthouse lamp", 1)
    seconds = time.perf_counter() - started
    found = bool(hits) and hits[0].document_id == document.pk
    print(f"\nAdd one document to a {size:,}-chunk base → searchable: {seconds:.1f} s "
          f"(status {document.status}, found first: {found})")


# ---------------------------------------------------------------- --backend milvus


def compare_backends(sizes: list[int], n_queries: int, milvus_uri: str) -> None:
    import os
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="kefu-kb-latency-"))
    sys.path.insert(0, str(kb_datasets.ROOT))  # tests.kb.milvus_server
    server = None
    if not milvus_uri:
        from tests.kb.milvus_server import free_port, start

        server = start(workdir / "milvus", free_port())
        milvus_uri = f"http://127.0.0.1:{server.args[server.args.index('--port') + 1]}"
    os.environ["KEFU_MILVUS_URI"] = milvus_uri
    kb_datasets.django_setup(workdir)
    print(f"Milvus: {'Milvus Lite server process' if server else milvus_uri}; one thread per process\n")
    print("| chunks | backend | build (ingestion) rows/s | hybrid p50 ms | hybrid p95 ms | web RSS MB "
          "(before → after loading + queries) | Milvus process RSS MB |")
    print("|---|---|---|---|---|---|---|")
    try:
        for size in sizes:
            kb_id = stored_base(size)
            for backend in ("local", "milvus"):
                rate = timed_build(kb_id, size, backend)
                child = web_child(workdir, kb_id, n_queries)
                milvus_rss = rss_mb(server.pid) if server and backend == "milvus" else None
                print(f"| {size:,} | {backend} | {rate:,.0f} | {child['p50']:.2f} | {child['p95']:.2f} | "
                      f"{child['rss_before']:.0f} → {child['rss_after']:.0f} | "
                      f"{'' if milvus_rss is None else f'{milvus_rss:.0f}'} |")
                sys.stdout.flush()
    finally:
        if server is not None:
            from tests.kb.milvus_server import stop

            stop(server)


def stored_base(size: int, *, seed: int = 7, name: str = "") -> int:
    """A base whose ``size`` chunks (generated text, random unit vectors) are in the database, unindexed."""
    from kb.models import Chunk, Document
    from kb.services import content_hash, knowledge_base_create

    texts, vectors, _ = corpus(size, seed=seed)
    kb = knowledge_base_create(name=name or f"backends {size}")
    bulk = Document.objects.create(knowledge_base=kb, title="generated", content_hash=content_hash(b"generated"),
                                   status=Document.Status.READY)
    Chunk.objects.bulk_create(
        [Chunk(document=bulk, ordinal=i, text=t, token_count=len(t.split()), embedding=v.tobytes())
         for i, (t, v) in enumerate(zip(texts, vectors, strict=True))], batch_size=2000)
    return kb.pk


def timed_build(kb_id: int, size: int, backend: str) -> float:
    """Rows per second of one index build on ``backend`` (analysis + index writing, vectors stored already)."""
    from kb.indexing import index_build

    started = time.perf_counter()
    version = index_build(knowledge_base_id=kb_id, backend=backend, gate=False)
    assert version.backend == backend and version.chunk_count == size, version
    return size / (time.perf_counter() - started)


def web_child(workdir: Path, kb_id: int, n_queries: int) -> dict:
    import json
    import subprocess

    result = subprocess.run([sys.executable, __file__, "--serve-queries", str(kb_id), "--queries", str(n_queries),
                             "--workdir", str(workdir)], capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the web process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def serve_queries(workdir: Path, kb_id: int, n_queries: int) -> None:
    """The "web" process: load the active version of the base and answer the queries; print p50, p95 and RSS."""
    import json
    import os

    kb_datasets.django_setup(workdir)
    from kb.embedding import embedding_dimension
    from kb.indexing import active_index
    from kb.models import KnowledgeBase
    from kb.retrieval.search import candidates, fuse

    embedding_dimension()  # the embedder a web worker holds anyway
    before = rss_mb(os.getpid())
    kb = KnowledgeBase.objects.get(pk=kb_id)
    _, _, queries = corpus(1000, seed=7)
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((n_queries, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = list(zip(queries[:n_queries], vectors, strict=True))

    def hybrid_candidates(item):
        found = candidates(active_index(kb_id), item[0], DEPTH, query_vector=item[1])
        return fuse(found, dense_weight=kb.fusion_dense_weight, rrf_k=kb.fusion_rrf_k, limit=10,
                    method=kb.fusion_method)

    hybrid_candidates(items[0])  # loads the version (local: its files into memory)
    p50, p95 = percentiles(timed(hybrid_candidates, items))
    print(json.dumps({"p50": p50, "p95": p95, "rss_before": before, "rss_after": rss_mb(os.getpid())}))


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


if __name__ == "__main__":
    main()
