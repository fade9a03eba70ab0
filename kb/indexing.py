"""Versioned, atomic index builds and the per-process cache of the active version.

A build writes ``KEFU_DATA_DIR/indexes/kb-<id>/v<N>`` beside the active version (files
first into a temporary folder, renamed when complete), then switches
``KnowledgeBase.active_index`` in one transaction. A failed or killed build leaves the old
version active. Every search reads the active version id (one indexed query) and reloads
when it changed, so web and worker processes notice a switch by themselves; a process whose
disk lacks a version's files rebuilds them from the chunks and embeddings in the database.

Every version records the embedding model of its vectors (name and file hash). A build that
switches the base to another model (a tuned one, :mod:`kb.tuning`) re-embeds every chunk and
FAQ phrasing into memory first, writes the version, and in the activating transaction writes
the new vectors to the database and switches ``KnowledgeBase.embedding_model``: the old version
(and the old vectors that the chat reads beside it) serve until that commit. Rows that arrived
during the re-embedding are sent round again (documents re-queued, FAQ entries re-embedded).

Budget: tokenising for BM25 dominates (≈1 s per 10k chunks on one core); a 100k-chunk base
needs ≈150 MB for vectors plus ≈100 MB for the BM25 matrix while building.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from kb.embedding import (
    PASSAGE,
    check_model_name,
    embed_passages_with_tokens,
    embed_texts,
    embedding_dimension,
    knowledge_base_model,
    model_hash,
)
from kb.models import Chunk, Document, FaqEntry, IndexVersion, KnowledgeBase
from kb.retrieval.analyzer import analyze
from kb.retrieval.dense import DenseIndex
from kb.retrieval.headings import head_vectors, section_heads
from kb.retrieval.token_store import TokenStore, store_load, store_write
from kb.search_backends import SearchBackendUnavailable, backend_named, configured_backend
from kb.signals import index_activated
from kefu.faults import pause_point

log = logging.getLogger(__name__)

ROW_CHUNK = 0
ROW_FAQ = 1
ROW_HEADING = 2  # a section's heading, standing for its first chunk (kb.retrieval.headings)
INDEXED_STATUSES = (Document.Status.INDEXING, Document.Status.READY)
KEEP_VERSIONS = 2  # the active one and its predecessor (a process may still be reading it)


@dataclass(frozen=True)
class IndexRows:
    """What each index row is: kind (chunk / FAQ phrasing) and the chunk or FAQ entry id."""

    kinds: np.ndarray  # (R,) int8
    refs: np.ndarray  # (R,) int64


@dataclass(frozen=True)
class Reembedded:
    """A model switch's vectors, computed before its build from the rows as they were then."""

    model: str
    chunks: dict[int, tuple[int, str, np.ndarray]]  # chunk id → (document id, text, vector)
    faq: dict[int, tuple[datetime, list[str], str, np.ndarray]]  # entry id → (updated_at, phrasings, answer, (P, D))
    tokens: dict[str, np.ndarray] = field(default_factory=dict)  # chunk text → its word-piece rows (token store)


@dataclass
class LoadedIndex:
    version_id: int
    number: int
    rows: IndexRows
    bm25: object  # kb.retrieval.bm25.Bm25Index
    dense: object  # kb.retrieval.dense.DenseIndex
    embedding_model: str = ""  # the model its vectors came from (blank: recorded before versions named it)
    tokens: TokenStore | None = None  # its passages' word-piece vectors (kb.retrieval.token_store), when stored


_cache: dict[int, LoadedIndex] = {}
_cache_lock = threading.Lock()
_build_locks: dict[int, threading.Lock] = {}


def index_root(kb_id: int) -> Path:
    return Path(settings.KEFU_DATA_DIR) / "indexes" / f"kb-{kb_id}"


def version_dir(kb_id: int, number: int) -> Path:
    return index_root(kb_id) / f"v{number}"


def index_build(*, knowledge_base_id: int, embedding_model: str = "",
                on_progress: Callable[[int, int], None] | None = None, gate: bool = True,
                backend: str = "") -> IndexVersion:
    """Build the next index version from the database and make it active; raises on failure.

    ``embedding_model``: switch the base to this model (every vector re-embedded, see the module
    docstring); ``on_progress(done, total)`` follows that re-embedding. ``gate``: compare the build
    with the active version first and hold it back when it is worse (kb.regression_gate); an
    admin's "activate anyway" builds with ``gate=False``. ``backend``: where the version is written
    (kb.search_backends; default ``KEFU_SEARCH_BACKEND``).
    """
    target = backend_named(backend) if backend else configured_backend()

    current = knowledge_base_model(KnowledgeBase.objects.get(pk=knowledge_base_id))
    model = check_model_name(embedding_model or current)
    lock = _build_locks.setdefault(knowledge_base_id, threading.Lock())
    with lock:
        version = version_reserve(knowledge_base_id, target.name)
        started = time.perf_counter()
        try:
            fresh = rows_reembed(knowledge_base_id, model, on_progress) if model != current else None
            stats = target.write(knowledge_base_id, version, model=model, fresh=fresh)
        except Exception as exc:
            IndexVersion.objects.filter(pk=version.pk).update(
                status=IndexVersion.Status.FAILED, error_message=f"{type(exc).__name__}: {exc}"[:2000]
            )
            raise
        document_ids = stats.pop("document_ids")
        report = gate_report(knowledge_base_id, version, stats["embedding_model"]) if gate else None
        if report is not None and not report.passed:
            version_hold(version, stats, time.perf_counter() - started, document_ids, report)
            return version
        version_activate(version, stats, time.perf_counter() - started, document_ids, fresh=fresh,
                         gate=report.as_dict() if report else {})
        versions_prune(knowledge_base_id)
        return version


def versions_prune(kb_id: int) -> None:
    """Each backend the base has versions on deletes the rows of versions no longer kept.

    Kept: the newest KEEP_VERSIONS ready ones (a process may still be reading the predecessor) and
    builds still running; failed, killed, held and older versions go. A backend that does not answer
    is left for the next build (its stale rows are invisible: searches filter by the active version).
    """
    versions = IndexVersion.objects.filter(knowledge_base_id=kb_id)
    keep = set(versions.filter(status=IndexVersion.Status.READY).order_by("-number")
               .values_list("pk", flat=True)[:KEEP_VERSIONS])
    keep |= set(versions.filter(status=IndexVersion.Status.BUILDING).values_list("pk", flat=True))
    for name in sorted(set(versions.values_list("backend", flat=True))):
        try:
            backend_named(name).prune(kb_id, keep)
        except SearchBackendUnavailable as exc:
            log.warning("index kb-%s: old %s rows not pruned (%s); the next build retries", kb_id, name, exc)


def gate_report(kb_id: int, version: IndexVersion, model: str):
    """The regression gate's comparison of the version just written with the active one."""
    # lazy: kb.regression_gate imports kb.evaluation → kb.retrieval.search, which imports this module
    from kb.regression_gate import version_gate

    kb = KnowledgeBase.objects.get(pk=kb_id)
    candidate = replace(version_load(kb_id, version.pk, version.number, model, version.backend),
                        embedding_model=model)
    return version_gate(kb, candidate=candidate, active=active_index(kb_id))


def version_hold(version: IndexVersion, stats: dict, seconds: float, document_ids: set[int], report) -> None:
    """Keep a version the gate rejected: its files and figures stay, the active version keeps serving.

    Its documents are parsed and embedded, so they are marked ready; their stage says the index
    holding them is not serving yet (the KB page shows why, and "activate anyway").
    """
    with transaction.atomic():
        for field, value in stats.items():
            setattr(version, field, value)
        version.status = IndexVersion.Status.HELD
        version.build_seconds = seconds
        version.gate = report.as_dict()
        version.save()
        Document.objects.filter(pk__in=document_ids, status=Document.Status.INDEXING).update(
            status=Document.Status.READY, stage=f"ready; index v{version.number} held by the regression gate",
            progress=100)
    log.warning("index kb-%s v%s held by the regression gate: %s", version.knowledge_base_id, version.number,
                report.reason)


def rows_reembed(kb_id: int, model: str, on_progress=None) -> Reembedded:
    """Every indexed chunk and every FAQ phrasing of the base embedded by ``model`` (nothing written): chunks as
    passages, phrasings as questions (kb.embedding roles), one progress count over both."""
    chunks = list(Chunk.objects.filter(document__knowledge_base_id=kb_id, document__status__in=INDEXED_STATUSES)
                  .order_by("id").values_list("id", "document_id", "text"))
    entries = list(FaqEntry.objects.filter(knowledge_base_id=kb_id).order_by("id")
                   .values_list("id", "updated_at", "question", "alternatives", "answer"))
    phrasings = [[question, *[a for a in alternatives if a]] for _, _, question, alternatives, _ in entries]
    questions = [p for group in phrasings for p in group]
    total = len(chunks) + len(questions)

    def counted(offset: int):
        return (lambda done, _: on_progress(offset + done, total)) if on_progress else None

    batch = settings.KEFU_KB_EMBED_BATCH
    texts = [text for _, _, text in chunks]
    tokens = {}
    if settings.KEFU_KB_TOKEN_STORE:  # the version's token store needs the chunks' word pieces: one pass for both
        chunk_vectors, rows = embed_passages_with_tokens(texts, model=model, on_batch=counted(0))
        tokens = dict(zip(texts, rows, strict=True))
    else:
        chunk_vectors = embed_texts(texts, model=model, batch_size=batch, on_batch=counted(0), role=PASSAGE)
    vectors = np.concatenate([
        chunk_vectors.reshape(-1, embedding_dimension(model)),
        embed_texts(questions, model=model, batch_size=batch, on_batch=counted(len(chunks))),
    ])
    fresh_chunks = {cid: (did, text, vectors[i]) for i, (cid, did, text) in enumerate(chunks)}
    fresh_faq, start = {}, len(chunks)
    for (entry_id, updated_at, _, _, answer), group in zip(entries, phrasings, strict=True):
        fresh_faq[entry_id] = (updated_at, group, answer, vectors[start:start + len(group)])
        start += len(group)
    return Reembedded(model, fresh_chunks, fresh_faq, tokens)


def version_reserve(kb_id: int, backend: str = "local") -> IndexVersion:
    with transaction.atomic():
        KnowledgeBase.objects.select_for_update().get(pk=kb_id)
        last = IndexVersion.objects.filter(knowledge_base_id=kb_id).aggregate(n=Max("number"))["n"] or 0
        return IndexVersion.objects.create(knowledge_base_id=kb_id, number=last + 1, backend=backend)


def index_build_unless_busy(*, knowledge_base_id: int) -> IndexVersion | None:
    """Build now unless documents of this base are still ahead in the pipeline.

    Uploading fifty files should cost one index build, not fifty: a document that finishes
    while others are still queued, parsing or embedding leaves the build to the last of
    them (statuses are committed before this check, so the last one always sees the rest).
    """
    ahead = Document.objects.filter(
        knowledge_base_id=knowledge_base_id,
        status__in=(Document.Status.QUEUED, Document.Status.PARSING, Document.Status.EMBEDDING),
    )
    if ahead.exists():
        return None
    return index_build(knowledge_base_id=knowledge_base_id)


def version_activate(version: IndexVersion, stats: dict, seconds: float, document_ids: set[int],
                     fresh: Reembedded | None = None, gate: dict | None = None) -> None:
    """Mark the version ready, point the base at it and mark the documents it holds ready — one transaction.

    A model switch (``fresh``) also writes the new vectors and the base's model in that transaction.
    """
    with transaction.atomic():
        kb = KnowledgeBase.objects.select_for_update().get(pk=version.knowledge_base_id)
        if fresh is not None:
            vectors_switch(kb, fresh)
        for field, value in stats.items():
            setattr(version, field, value)
        version.status = IndexVersion.Status.READY
        version.build_seconds = seconds
        version.gate = gate or {}
        version.save()
        current = kb.active_index
        if current is None or current.number < version.number:
            kb.active_index = version
            kb.save(update_fields=["active_index"])
            transaction.on_commit(lambda: index_activated.send(
                sender=IndexVersion, knowledge_base_id=kb.pk, index_version_id=version.pk))
        Document.objects.filter(pk__in=document_ids, status=Document.Status.INDEXING).update(
            status=Document.Status.READY, stage="ready", progress=100
        )


def vectors_switch(kb: KnowledgeBase, fresh: Reembedded) -> None:
    """Store a switch's vectors and the base's new model (inside the activating transaction, base row locked).

    Chunks stored since the re-embedding began have vectors of the old model: their documents are
    queued again. FAQ entries edited since then lose their vectors: the next build embeds them.
    """
    # lazy: kb.services loads Celery (kefu.background), which the web process does not import at start-up
    from kb.services import index_rebuild_enqueue, ingest_enqueue

    chunks, stale_documents = [], set()
    for chunk_id, document_id in Chunk.objects.filter(document__knowledge_base_id=kb.pk).values_list(
            "id", "document_id").iterator(chunk_size=2000):
        if chunk_id in fresh.chunks:
            chunks.append(Chunk(pk=chunk_id, embedding=fresh.chunks[chunk_id][2].tobytes()))
        else:
            stale_documents.add(document_id)
    Chunk.objects.bulk_update(chunks, ["embedding"], batch_size=500)
    entries, stale_entries = [], []
    for entry_id, updated_at in FaqEntry.objects.filter(knowledge_base_id=kb.pk).values_list("id", "updated_at"):
        known = fresh.faq.get(entry_id)
        if known is not None and known[0] == updated_at:
            entries.append(FaqEntry(pk=entry_id, embeddings=known[3].tobytes()))
        else:
            stale_entries.append(entry_id)
    FaqEntry.objects.bulk_update(entries, ["embeddings"], batch_size=500)  # bulk_update leaves updated_at alone
    FaqEntry.objects.filter(pk__in=stale_entries).update(embeddings=b"")
    requeued = list(Document.objects.filter(pk__in=stale_documents, status__in=INDEXED_STATUSES)
                    .values_list("id", flat=True))
    Document.objects.filter(pk__in=requeued).update(status=Document.Status.QUEUED, progress=0, updated_at=timezone.now(),
                                                    stage="queued (the embedding model changed)")
    kb.embedding_model = fresh.model
    kb.save(update_fields=["embedding_model"])
    for document_id in requeued:
        transaction.on_commit(lambda document_id=document_id: ingest_enqueue(document_id))
    if stale_entries and not requeued:
        transaction.on_commit(lambda: index_rebuild_enqueue(kb.pk))
    if requeued or stale_entries:
        log.info("kb-%s switched to %s: %d document(s) re-queued, %d FAQ entr(ies) to re-embed",
                 kb.pk, fresh.model, len(requeued), len(stale_entries))


def write_version_files(kb_id: int, directory: Path, *, model: str = "", fresh: Reembedded | None = None) -> dict:
    """Write a complete version folder atomically (temp folder, then rename); return its stats.

    ``model``: the embedding model of the vectors (default: the base's); ``fresh``: a switch's vectors.
    """
    from kb.retrieval.bm25 import build_bm25  # lazy: scipy loads only where an index is built or loaded

    # lazy: looked up per build, so a test can replace kb.retrieval.dense.build_dense
    from kb.retrieval.dense import build_dense

    model = model or knowledge_base_model(KnowledgeBase.objects.get(pk=kb_id))
    digest = model_hash(model)
    if fresh is None:
        texts, vectors, rows, document_ids = collect_rows(kb_id, model=model)
    else:
        texts, vectors, rows, document_ids = fresh_rows(fresh, embedding_dimension(model))
    temporary = directory.with_name(directory.name + f".tmp-{time.monotonic_ns()}")
    temporary.mkdir(parents=True, exist_ok=True)
    try:
        bm25 = build_bm25([analyze(text) for text in texts])
        appended = appended_hnsw(kb_id, rows, vectors, digest) if fresh is None else None
        dense = appended or build_dense(
            vectors, dimension=embedding_dimension(model), hnsw_threshold=settings.KEFU_KB_HNSW_THRESHOLD)
        bm25.save(temporary)
        dense.save(temporary)
        np.save(temporary / "row-kinds.npy", rows.kinds)
        np.save(temporary / "row-refs.npy", rows.refs)
        if settings.KEFU_KB_TOKEN_STORE:
            store_write(temporary, passage_texts(texts, rows), model=model, previous=active_tokens(kb_id, digest),
                        known=fresh.tokens if fresh is not None else None)
        pause_point("index_files_written")
        if directory.exists():
            shutil.rmtree(directory)
        temporary.rename(directory)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return {
        "chunk_count": int((rows.kinds == ROW_CHUNK).sum()),
        "faq_count": len(set(rows.refs[rows.kinds == ROW_FAQ].tolist())),
        "dense_kind": dense.kind,
        "embedding_model": model,
        "embedding_hash": digest,
        "document_ids": document_ids,
    }


def passage_texts(texts: list[str], rows: IndexRows) -> list[str]:
    """The texts a hit of this version carries (kb.search.hydrate): each chunk's, and each FAQ entry's first row
    ("question\nanswer"); heading rows and further phrasings are not passages."""
    seen: set[int] = set()
    out = []
    for text, kind, ref in zip(texts, rows.kinds.tolist(), rows.refs.tolist(), strict=True):
        if kind == ROW_CHUNK:
            out.append(text)
        elif kind == ROW_FAQ and ref not in seen:
            seen.add(ref)
            out.append(text)
    return out


def active_tokens(kb_id: int, digest: str) -> TokenStore | None:
    """The active version's token store when it comes from the same model files (its rows are copied)."""
    active, active_digest = KnowledgeBase.objects.filter(pk=kb_id).values_list(
        "active_index__number", "active_index__embedding_hash").first() or (None, "")
    if active is None or active_digest != digest:
        return None
    return store_load(version_dir(kb_id, active))


def appended_hnsw(kb_id: int, rows: IndexRows, vectors: np.ndarray, digest: str):
    """The active version's HNSW graph plus the new rows, when the new rows only append to it.

    Building HNSW from scratch costs minutes at 100k vectors (one core); adding one document's
    chunks to the existing graph costs milliseconds. Only valid when the old rows are an exact
    prefix of the new ones (nothing deleted or re-ordered) and come from the same model files;
    otherwise None and a full build.
    """
    active, active_digest = KnowledgeBase.objects.filter(pk=kb_id).values_list(
        "active_index__number", "active_index__embedding_hash").first() or (None, "")
    if active is None or (active_digest and active_digest != digest):
        return None
    old_dir = version_dir(kb_id, active)
    try:
        if (old_dir / "dense-kind.txt").read_text() != "hnsw":
            return None
        old_kinds, old_refs = np.load(old_dir / "row-kinds.npy"), np.load(old_dir / "row-refs.npy")
    except OSError:
        return None
    n = len(old_refs)
    if n > len(rows.refs) or not (np.array_equal(old_kinds, rows.kinds[:n]) and np.array_equal(old_refs, rows.refs[:n])):
        return None
    dense = DenseIndex.load(old_dir)
    if dense.size != n:
        return None
    if len(vectors) > n:
        dense.index.add(np.ascontiguousarray(vectors[n:], dtype=np.float32))
    log.info("index kb-%s: %d vectors appended to the HNSW graph of v%s", kb_id, len(vectors) - n, active)
    return dense


def collect_rows(kb_id: int, *, model: str) -> tuple[list[str], np.ndarray, IndexRows, set[int]]:
    """Texts, vectors and row identities of every indexed chunk and FAQ phrasing, and their documents."""
    # lazy: kb.services loads Celery (kefu.background), which the web process does not import at start-up
    from kb.services import faq_entries_embed

    faq_entries_embed(knowledge_base_id=kb_id, missing_only=True)
    dim = embedding_dimension(model)
    texts: list[str] = []
    blobs: list[bytes] = []
    kinds: list[int] = []
    refs: list[int] = []
    document_ids: set[int] = set()
    chunks = list(Chunk.objects.filter(
        document__knowledge_base_id=kb_id, document__status__in=INDEXED_STATUSES
    ).order_by("id").values_list("id", "document_id", "text", "embedding", "heading_path").iterator(chunk_size=2000))
    heads = heads_by_chunk([(c[0], c[1], c[4]) for c in chunks], model, dim)
    for chunk_id, document_id, text, embedding, _ in chunks:
        document_ids.add(document_id)
        texts.append(text)
        blobs.append(bytes(embedding))
        kinds.append(ROW_CHUNK)
        refs.append(chunk_id)
        if chunk_id in heads:  # right after its chunk: a new document's rows still only append
            texts.append(heads[chunk_id][0])
            blobs.append(heads[chunk_id][1].tobytes())
            kinds.append(ROW_HEADING)
            refs.append(chunk_id)
    entries = FaqEntry.objects.filter(knowledge_base_id=kb_id).order_by("id")
    for entry_id, document_id, question, alternatives, answer, embeddings in entries.values_list(
            "id", "source_document_id", "question", "alternatives", "answer", "embeddings"
    ).iterator(chunk_size=2000):
        if document_id is not None:
            document_ids.add(document_id)
        phrasings = [question, *[a for a in alternatives if a]]
        matrix = np.frombuffer(bytes(embeddings), dtype=np.float32).reshape(-1, dim)
        for phrasing, vector in zip(phrasings, matrix, strict=False):
            texts.append(f"{phrasing}\n{answer}")
            blobs.append(vector.tobytes())
            kinds.append(ROW_FAQ)
            refs.append(entry_id)
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dim)
    rows = IndexRows(np.asarray(kinds, dtype=np.int8), np.asarray(refs, dtype=np.int64))
    return texts, vectors, rows, document_ids


def heads_by_chunk(chunks: list[tuple[int, int, str]], model: str, dim: int) -> dict[int, tuple[str, np.ndarray]]:
    """Each section's heading row — BM25 text and vector — keyed by the section's first chunk."""
    heads = section_heads(chunks)
    vectors = head_vectors(heads, model, dim)
    return {head.chunk_id: (head.bm25_text, vector) for head, vector in zip(heads, vectors, strict=True)}


def fresh_rows(fresh: Reembedded, dim: int) -> tuple[list[str], np.ndarray, IndexRows, set[int]]:
    """:func:`collect_rows` for a model switch: the rows and vectors the re-embedding computed."""
    texts, matrices, kinds, refs = [], [], [], []
    document_ids = set()
    paths = dict(Chunk.objects.filter(pk__in=list(fresh.chunks)).values_list("id", "heading_path"))
    heads = heads_by_chunk([(cid, fresh.chunks[cid][0], paths.get(cid, "")) for cid in sorted(fresh.chunks)],
                           fresh.model, dim)
    for chunk_id, (document_id, text, vector) in sorted(fresh.chunks.items()):
        document_ids.add(document_id)
        texts.append(text)
        matrices.append(vector.reshape(1, dim))
        kinds.append(ROW_CHUNK)
        refs.append(chunk_id)
        if chunk_id in heads:
            texts.append(heads[chunk_id][0])
            matrices.append(heads[chunk_id][1].reshape(1, dim))
            kinds.append(ROW_HEADING)
            refs.append(chunk_id)
    for entry_id, (_, phrasings, answer, matrix) in fresh.faq.items():
        texts.extend(f"{phrasing}\n{answer}" for phrasing in phrasings)
        matrices.append(matrix.reshape(-1, dim))
        kinds.extend([ROW_FAQ] * len(phrasings))
        refs.extend([entry_id] * len(phrasings))
    vectors = np.concatenate(matrices) if matrices else np.zeros((0, dim), dtype=np.float32)
    return texts, vectors, IndexRows(np.asarray(kinds, dtype=np.int8), np.asarray(refs, dtype=np.int64)), document_ids


def prune_old_versions(kb_id: int) -> None:
    """Delete folders of versions older than the newest KEEP_VERSIONS ready ones, and the temporary
    folders of builds that ended without finishing (failed, or interrupted: see :func:`versions_interrupted`)."""
    keep = set(IndexVersion.objects.filter(knowledge_base_id=kb_id, status=IndexVersion.Status.READY)
               .order_by("-number").values_list("number", flat=True)[:KEEP_VERSIONS])
    building = set(IndexVersion.objects.filter(knowledge_base_id=kb_id, status=IndexVersion.Status.BUILDING)
                   .values_list("number", flat=True))
    root = index_root(kb_id)
    if not root.exists():
        return
    for folder in root.iterdir():
        name, _, suffix = folder.name.partition(".tmp-")
        if not (name.startswith("v") and name[1:].isdigit()):
            continue
        number = int(name[1:])
        if (suffix and number not in building) or (not suffix and number not in keep):
            shutil.rmtree(folder, ignore_errors=True)


def versions_interrupted(*, older_than: timedelta | None = None) -> int:
    """Mark builds whose process stopped mid-way as failed (their temporary folders go at the next prune).

    Without ``older_than`` (an embedded process starting: nothing else builds) every build still
    "building" is taken; with it (service mode) only those started longer ago than that.
    """
    stuck = IndexVersion.objects.filter(status=IndexVersion.Status.BUILDING)
    if older_than is not None:
        stuck = stuck.filter(created_at__lt=timezone.now() - older_than)
    count = stuck.update(status=IndexVersion.Status.FAILED,
                         error_message="The build was interrupted: its process stopped before it finished.")
    if count:
        log.warning("%d interrupted index build(s) marked failed", count)
    return count


def active_index(kb_id: int) -> LoadedIndex | None:
    """The active version of a knowledge base, loaded once per process and reloaded on a switch."""
    active = (KnowledgeBase.objects.filter(pk=kb_id)
              .values_list("active_index_id", "active_index__number", "active_index__embedding_model",
                           "active_index__backend").first())
    if active is None or active[0] is None:
        return None
    version_id, number, model, backend = active
    cached = _cache.get(kb_id)
    if cached is not None and cached.version_id == version_id:
        return cached
    with _cache_lock:
        cached = _cache.get(kb_id)
        if cached is None or cached.version_id != version_id:
            cached = version_load(kb_id, version_id, number, model or "", backend)
            _cache[kb_id] = cached
    return cached


def version_load(kb_id: int, version_id: int, number: int, model: str, backend: str):
    """A version's search handle from the backend that holds it (local: its files, loaded into memory)."""
    return backend_named(backend).load(kb_id, version_id, number, model)


def load_version(kb_id: int, version_id: int, number: int) -> LoadedIndex:
    from kb.retrieval.bm25 import Bm25Index  # lazy: scipy loads only where an index is built or loaded

    directory = version_dir(kb_id, number)
    if not (directory / "row-refs.npy").exists():
        # Another node built this version: rebuild its files here from the database.
        log.info("index kb-%s v%s not on this disk; rebuilding from the database", kb_id, number)
        write_version_files(kb_id, directory)
    rows = IndexRows(np.load(directory / "row-kinds.npy"), np.load(directory / "row-refs.npy"))
    model = IndexVersion.objects.filter(pk=version_id).values_list("embedding_model", flat=True).first()
    return LoadedIndex(version_id=version_id, number=number, rows=rows,
                       bm25=Bm25Index.load(directory), dense=DenseIndex.load(directory),
                       embedding_model=model or "", tokens=store_load(directory))


def forget_cached_indexes() -> None:
    """Drop every loaded index (tests; a process that changed KEFU_DATA_DIR)."""
    with _cache_lock:
        _cache.clear()
