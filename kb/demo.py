"""The demo knowledge bases: the zaragoza construction FAQ (English) and Debian's Chinese FAQ.

The English base: each zaragoza FAQ row (real customer FAQ pairs, CC BY 4.0) becomes an FAQ entry
(direct answers) and a document holding its answer (cited passages), ingested through the ordinary
path; the base's fusion weight is then tuned on those question → answer-document pairs. ``demo_setup`` then
tunes its embedder on its own FAQ once (kb.tuning, adopted only if the 2-fold gain and the regression gate
allow): measured on the demo's four English sets (Zen 4, session 10), in-base right 0.79 → 0.83 and in-base
refused 0.057 → 0.030, out-of-base refused 0.94 → 0.93 — 253 s on 2 AVX2-only Zen 3 cores (session 13), once.

The Chinese base: the HTML chapters of Debian's FAQ in Simplified Chinese (``/usr/share/doc/debian/FAQ/
zh-cn``, the Debian package debian-faq-zh-cn), each one document, ingested as the bench's debian-zh base
(bench/kb_datasets.py ``build_debian``), so ``chat/data/eval/debian-zh.jsonl`` measures it. Without the
package it is skipped with a line saying so.

Both are idempotent: a second call only reports.

Budget: English ≈500 one-chunk documents, 30–60 s on 2 idle cores (embedding dominates); Chinese 17
chapters, 313 chunks, 23 s on 2 shared cores (measured).
"""

from __future__ import annotations

import json
from pathlib import Path

import zaragoza_construction_faq
from django.conf import settings

from kb.evaluation import fusion_weight_tune
from kb.indexing import index_build
from kb.ingestion import document_ingest
from kb.models import Chunk, Document, FaqEntry, KnowledgeBase, TuningRun
from kb.services import document_upload, faq_entry_create, knowledge_base_create
from kb.tuning import TuningRejected, tuning_enqueue, tuning_run, tuning_start

DEMO_NAME = "Demo — Zaragoza construction FAQ"
DEMO_SLUG = "demo-zaragoza"
DEMO_ZH_NAME = "演示 — Debian 中文常见问题"  # "Demo — Debian FAQ in Chinese"
DEMO_ZH_SLUG = "demo-debian-zh"
DEBIAN_ZH_FAQ = Path("/usr/share/doc/debian/FAQ/zh-cn")  # the debian-faq-zh-cn package's chapters
DEBIAN_ZH_PATTERN = "*.zh-cn.html"


def faq_rows() -> list[dict]:
    path = Path(zaragoza_construction_faq.__file__).parent / "data" / "faq-en.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def ensure_demo_knowledge_base() -> str:
    """Create and index the demo base unless it is there; returns a one-line summary."""
    kb = KnowledgeBase.objects.filter(slug=DEMO_SLUG).first()
    if kb is not None and not kb.documents.exclude(status=Document.Status.READY).exists() and kb.active_index_id:
        return summary(kb, "already present")
    kb = kb or demo_create()
    demo_ingest(kb)
    return summary(kb, "ready")


def demo_create():
    """The demo base, on ``KEFU_DEMO_EMBEDDING_MODEL`` (all-mpnet-base-v2: the bigger bundled model answers the blind
    sets' customers best, BENCHMARKS.md; new bases take KEFU_EMBEDDING_MODEL, the small one unless configured)."""
    return knowledge_base_create(name=DEMO_NAME, slug=DEMO_SLUG, languages="en",
                                 embedding_model=settings.KEFU_DEMO_EMBEDDING_MODEL)


def demo_ingest(kb) -> None:
    """Store rows not stored yet, ingest unfinished documents, build once, tune fusion."""
    known = set(FaqEntry.objects.filter(knowledge_base=kb).values_list("external_id", flat=True))
    for row in faq_rows():
        if row["id"] in known:
            continue
        upload = document_upload(knowledge_base=kb, filename=f"{row['id']}.txt", data=row["a"].encode(),
                                 title=row["q"][:300], external_id=row["id"], enqueue=False)
        faq_entry_create(knowledge_base=kb, question=row["q"], answer=row["a"], external_id=row["id"],
                         source_document=upload.document, rebuild=False)
    for document_id in kb.documents.exclude(status=Document.Status.READY).values_list("id", flat=True):
        document_ingest(document_id=document_id)
    kb.refresh_from_db()
    if kb.active_index_id is None:
        index_build(knowledge_base_id=kb.pk)
    fusion_weight_tune(knowledge_base=kb)


def demo_tuning_pending() -> TuningRun | None:
    """A run (queued, not enqueued) tuning the demo base's embedder, unless one finished before — it is tried once
    (a failed or interrupted run is tried again). Raises kb.tuning.TuningRejected while another is active."""
    kb = KnowledgeBase.objects.filter(slug=DEMO_SLUG).first()
    if kb is None or TuningRun.objects.filter(knowledge_base=kb, status=TuningRun.Status.DONE).exists():
        return None
    return tuning_start(knowledge_base=kb, enqueue=False)


def demo_tuning_queue() -> str:
    """Leave the demo base's tuning to the server, once (a line saying so): in service mode the ingest worker takes
    the job now; an embedded server takes it up on its first request (kb.recovery), tuning in the background
    while the base answers with the model it has, and switches when the tuned index version is built."""
    try:
        run = demo_tuning_pending()
    except TuningRejected:
        return "Demo embedder tuning: already queued; the server tunes it in the background."
    if run is None:
        return "Demo embedder tuning: done before."
    if settings.KEFU_MODE != "embedded":
        tuning_enqueue(run.pk)
    return ("Demo embedder tuning: queued; the server tunes it in the background (~10 min on 2 cores with its "
            "all-mpnet-base-v2) and switches the base to it when done — the KB page shows the progress.")


def ensure_demo_tuned(stdout=None) -> str:
    """Tune the demo base's embedder once, in this process (a command's ``stdout`` gets a progress line); a line
    saying what came of it."""
    try:
        run = demo_tuning_pending()
    except TuningRejected as exc:
        return f"Demo embedder tuning: {exc}"
    if run is None:
        return "Demo embedder tuning: done before."
    if stdout is None:
        return tuning_summary(tuning_run(run_id=run.pk))
    from kb.management.progress import run_with_progress  # lazy: the command-line progress bar

    stdout.write("Tuning the demo base's embedder on its own FAQ (once; --no-tune skips it) …")
    return tuning_summary(run_with_progress(stdout, run, tuning_run))


def tuning_summary(run: TuningRun) -> str:
    if run.status == TuningRun.Status.FAILED:
        return f"Demo embedder tuning failed (the base keeps its model): {run.error_message}"
    if run.status != TuningRun.Status.DONE:
        return f"Demo embedder tuning did not finish (run {run.pk} is {run.status}); the base keeps its model."
    return f"Demo embedder tuning: {run.reason} ({run.seconds:.0f} s)"


def summary(kb, state: str) -> str:
    kb.refresh_from_db()
    chunks = Chunk.objects.filter(document__knowledge_base=kb).count()
    return (f"Demo knowledge base {kb.name!r} {state}: {kb.documents.count()} documents, {chunks} chunks, "
            f"{kb.faq_entries.count()} FAQ entries (fusion: {kb.fusion_method}, dense weight "
            f"{kb.fusion_dense_weight}, RRF k {kb.fusion_rrf_k}).")


def zh_faq_files(directory: Path) -> list[Path]:
    """The chapters of Debian's Chinese FAQ, in name order (none: the package is not installed)."""
    return sorted(directory.glob(DEBIAN_ZH_PATTERN)) if directory.is_dir() else []


def ensure_demo_zh_knowledge_base(directory: Path | None = None) -> str:
    """Create and index the Chinese demo base unless it is there; a one-line summary (or why it is skipped).

    ``directory``: where the chapters are (default :data:`DEBIAN_ZH_FAQ`)."""
    directory = directory or DEBIAN_ZH_FAQ
    files = zh_faq_files(directory)
    if not files:
        return (f"Chinese demo skipped: Debian's Chinese FAQ is not installed ({directory}; "
                "apt-get install debian-faq-zh-cn).")
    kb = KnowledgeBase.objects.filter(slug=DEMO_ZH_SLUG).first()
    if kb is not None and not kb.documents.exclude(status=Document.Status.READY).exists() and kb.active_index_id:
        return summary(kb, "already present")
    kb = kb or demo_zh_create()
    demo_zh_ingest(kb, files)
    return summary(kb, "ready")


def demo_zh_create():
    return knowledge_base_create(name=DEMO_ZH_NAME, slug=DEMO_ZH_SLUG, languages="zh")


def demo_zh_ingest(kb, files: list[Path]) -> None:
    """Upload chapters not stored yet (a chapter's content hash makes a re-upload a no-op), ingest the
    unfinished ones, build once."""
    for path in files:
        document_upload(knowledge_base=kb, filename=path.name, data=path.read_bytes(), enqueue=False)
    for document_id in kb.documents.exclude(status=Document.Status.READY).values_list("id", flat=True):
        document_ingest(document_id=document_id)
    kb.refresh_from_db()
    if kb.active_index_id is None:
        index_build(knowledge_base_id=kb.pk)
