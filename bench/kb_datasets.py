"""Evaluation sets built from real data through Kefu's real ingestion path (shared by the kb benches).

- zaragoza: the ``zaragoza-construction-faq`` package, English; each answer uploaded as a
  document (external id = the FAQ id), each question a query whose relevant label is that id.
- debian-en / debian-zh: Debian's ``debian-faq`` / ``debian-faq-zh-cn`` HTML files uploaded as
  they are; queries are the section headings that are questions (numbering stripped),
  relevant = that section (the chunk's last heading).

Call :func:`django_setup` first: it points Kefu at a throw-away SQLite database and data dir.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_EN = Path("/usr/share/doc/debian/FAQ")
DEBIAN_ZH = DEBIAN_EN / "zh-cn"
NUMBERING = re.compile(r"^\s*[\d.]+\s*")


def django_setup(workdir: Path | None = None) -> Path:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="kefu-kb-bench-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["KEFU_DATA_DIR"] = str(workdir)
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.pop("REDIS_URL", None)
    os.environ["KEFU_WARMUP"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    import torch

    # One thread unless told: on a shared 2-core machine two spinning torch threads are
    # ~10x slower per query than one (measured 427 ms vs 38 ms under load 4.5).
    torch.set_num_threads(int(os.environ.get("KEFU_BENCH_THREADS", "1")))
    return workdir


def zaragoza_rows() -> list[dict]:
    import zaragoza_construction_faq

    path = Path(zaragoza_construction_faq.__file__).parent / "data" / "faq-en.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def ingest_all(kb, files: list[tuple[str, bytes, str]]) -> tuple[dict[str, str], float, int]:
    """Upload (name, bytes, external id) files, then ingest them in order as the ingest worker would.

    Returns external id → document title actually holding the content (duplicates collapse),
    seconds spent, and chunks stored.
    """
    from kb.ingestion import document_ingest
    from kb.models import Chunk
    from kb.services import document_upload

    started = time.perf_counter()
    documents, owner = [], {}
    for name, data, external_id in files:
        result = document_upload(knowledge_base=kb, filename=name, data=data, title=external_id or "",
                                 external_id=external_id, enqueue=False)
        owner[external_id] = result.document.title
        if result.created:
            documents.append(result.document.pk)
    for document_id in documents:
        document_ingest(document_id=document_id)
    seconds = time.perf_counter() - started
    return owner, seconds, Chunk.objects.filter(document__knowledge_base=kb).count()


def build_zaragoza(name: str = "Bench zaragoza"):
    from kb.evaluation import EvalQuery
    from kb.services import knowledge_base_create

    kb = knowledge_base_create(name=name)
    rows = zaragoza_rows()
    owner, seconds, chunks = ingest_all(kb, [(f"{r['id']}.txt", r["a"].encode(), r["id"]) for r in rows])
    queries = [EvalQuery(query=r["q"], relevant=(owner[r["id"]],)) for r in rows]
    return kb, queries, seconds, chunks


def build_debian(directory: Path, pattern: str, name: str, languages: str):
    from kb.evaluation import EvalQuery
    from kb.models import Chunk
    from kb.services import knowledge_base_create

    kb = knowledge_base_create(name=name, languages=languages)
    files = [(path.name, path.read_bytes(), "") for path in sorted(directory.glob(pattern))]
    if not files:
        raise SystemExit(f"no {pattern} under {directory}: apt-get install debian-faq debian-faq-zh-cn")
    _, seconds, chunks = ingest_all(kb, files)
    headings = set()
    for path in Chunk.objects.filter(document__knowledge_base=kb).values_list("heading_path", flat=True):
        last = path.split(" > ")[-1] if path else ""
        if last.rstrip().endswith(("?", "？")):
            headings.add(last)
    queries = [EvalQuery(query=NUMBERING.sub("", h).strip(), relevant=(h,)) for h in sorted(headings)]
    return kb, queries, seconds, chunks


def write_queries(queries, path: Path) -> None:
    path.write_text("".join(json.dumps({"query": q.query, "relevant": list(q.relevant)}, ensure_ascii=False) + "\n"
                            for q in queries), encoding="utf-8")


def customer_questions(kb, path: Path):
    """The in-base questions of an ``answer_eval`` set (``chat/data/eval/*.jsonl``) as retrieval queries.

    Their ``section`` labels name headings without numbering ("What is Debian GNU/Linux?"); each is
    resolved to the base's own heading ("1.2. What is Debian GNU/Linux?") so ``kb.evaluation`` can match
    it. These are questions as customers word them, written apart from the documents — unlike the
    heading queries of :func:`build_debian`, which the index now holds as rows of their own.
    """
    from chat.evaluation import heading_key
    from kb.evaluation import EvalQuery
    from kb.models import Chunk

    headings = {}
    for heading_path in Chunk.objects.filter(document__knowledge_base=kb).values_list("heading_path", flat=True):
        last = heading_path.split(" > ")[-1] if heading_path else ""
        headings.setdefault(heading_key(last), last)
    queries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("expect") != "in_base":
            continue
        sections = row.get("section") or []
        sections = [sections] if isinstance(sections, str) else sections
        relevant = tuple(headings[heading_key(s)] for s in sections if heading_key(s) in headings)
        if relevant:
            queries.append(EvalQuery(query=row["question"], relevant=relevant))
    return queries

