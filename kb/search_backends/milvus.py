"""The Milvus backend: BM25 full-text and dense search served by Milvus (standalone, cluster or Milvus Lite).

Schema (the reasoning is in docs/DESIGN-NOTES.md, "Retrieval on Milvus"): one collection per
embedding dimension, ``kefu_rows_d<dim>``, with the knowledge base as partition key. A row is a
chunk or one FAQ phrasing of one index version:

    id (auto) · kb (partition key) · version (IndexVersion id) · kind (0 chunk, 1 FAQ) · ref (chunk / entry id)
    · terms (analysed text, BM25 function input) · sparse (BM25 function output) · dense (vector, HNSW, IP)

``terms`` holds Kefu's own analysis of the text (kb.retrieval.analyzer: jieba for Chinese runs,
English stop words and Snowball stems, per base language and for mixed text) joined by spaces;
Milvus splits it on whitespace and scores it with its BM25 function, so both backends rank
the same terms and a base's tuned fusion carries over. Fusion stays the base's own (weighted
RRF or min-max, kb.retrieval.fusion) over the two candidate lists; :func:`server_ranker` gives
the Milvus ranker (``RRFRanker(k)`` / ``WeightedRanker``) equivalent to a base's fusion.

Versions are atomic: a build inserts its rows under its own version id, the database switches
``KnowledgeBase.active_index``, and searches filter ``kb == … and version == <active>``; rows of
versions no longer kept (older ones, failed or killed builds) are deleted by :meth:`MilvusBackend.prune`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from kb.embedding import embedding_dimension, model_hash
from kb.indexing import ROW_CHUNK, ROW_FAQ, ROW_HEADING, collect_rows, fresh_rows
from kb.models import FaqEntry
from kb.retrieval.analyzer import analyze
from kb.search_backends import MILVUS, BackendStatus, SearchBackendUnavailable, observed
from kefu.config import redact
from kefu.faults import pause_point
from kefu.preflight import one_line as first_line

log = logging.getLogger(__name__)

COLLECTION_PREFIX = "kefu_rows_d"
INSERT_BATCH = 1000
MAX_TERMS_BYTES = 60_000  # the VARCHAR holds 65,535 bytes
HNSW_PARAMS = {"M": 16, "efConstruction": 200}
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}  # as kb.retrieval.bm25 (rank-bm25's defaults)
FAQ_QUERY_BATCH = 1000  # FAQ entries per query for their rows' ids
QUERIES_PER_SEARCH = 64  # the fit's questions per batched search
TERMS_PER_SEARCH = 512  # one-term queries per batched search (Milvus takes up to 16,384)
QUERY_LIMIT = 16_384  # Milvus's most rows per query (an entry has a handful of phrasings)


@dataclass(frozen=True)
class MilvusIndex:
    """An index version in Milvus: what searches need to query it (no rows are held in this process)."""

    backend: MilvusBackend
    kb_id: int
    version_id: int
    number: int
    collection: str
    embedding_model: str = ""
    bm25 = None  # no in-process BM25 matrix (callers that need one check for None)
    rows = None

    def retrieve(self, terms: list[str], vector: np.ndarray, depth: int):
        """(BM25 items, dense items), each ``[((kind, ref), score), ...]`` best first, ``depth`` rows deep."""
        return self.backend.retrieve(self, terms, vector, depth)

    def retrieve_many(self, queries, depth: int) -> list:
        """:meth:`retrieve` of many ``(terms, vector, excluded row ids)`` queries, in batched searches."""
        return self.backend.retrieve_many(self, queries, depth)

    def term_profile(self, terms: list[str], exclude=()) -> tuple[float, float]:
        return self.backend.term_profile(self, terms, exclude)

    def term_profiles(self, queries) -> list[tuple[float, float]]:
        return self.backend.term_profiles(self, queries)

    def faq_rows(self) -> dict[int, list[int]]:
        return self.backend.faq_rows(self)

    def heading_rows(self) -> dict[int, list[int]]:
        return self.backend.heading_rows(self)


def is_lite(uri: str) -> bool:
    """A file path (Milvus Lite in this process) rather than an http(s)/tcp address."""
    return urlsplit(uri).scheme not in ("http", "https", "tcp", "grpc", "unix")


def collection_name(dim: int) -> str:
    return f"{COLLECTION_PREFIX}{dim}"


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """What pymilvus and gRPC raise when Milvus is down, unreachable or too slow."""
    # lazy: pymilvus and gRPC load only in processes that use a Milvus base
    import grpc
    from pymilvus.exceptions import MilvusException

    return (MilvusException, grpc.RpcError, ConnectionError, TimeoutError)


def terms_text(terms: list[str]) -> str:
    text = " ".join(terms)
    if len(text.encode()) > MAX_TERMS_BYTES:
        text = text.encode()[:MAX_TERMS_BYTES].decode(errors="ignore").rsplit(" ", 1)[0]
    return text


WHITESPACE = {"tokenizer": "whitespace"}
# Milvus Lite knows only "standard" and "jieba" tokenizers: its standard one splits on non-word characters
# and lower-cases, which leaves Kefu's terms (lower-case \w+ words, jieba words) whole as well.
LITE_ANALYZER = {"tokenizer": "standard"}


def analyzer_params(lite: bool) -> dict:
    """Split pre-analysed terms on whitespace."""
    return LITE_ANALYZER if lite else WHITESPACE


def is_unknown_tokenizer(exc: BaseException) -> bool:
    return "unknown tokenizer" in str(exc).lower()


def server_ranker(*, method: str, dense_weight: float, rrf_k: int):
    """The Milvus ranker equivalent to a base's fusion, or None when only Kefu's own fusion is exact.

    RRFRanker(k) has no per-list weights: it equals Kefu's weighted RRF only at equal weights. WeightedRanker
    normalises scores with arctan, not min-max over the candidates: the nearest Milvus has for min-max bases,
    not identical. So hybrid search fuses in Kefu (exact, and it keeps each retriever's ranks); this mapping
    is for an operator querying Milvus directly (``hybrid_search`` over the same collection).
    """
    # lazy: pymilvus and gRPC load only in processes that use a Milvus base
    from pymilvus import RRFRanker, WeightedRanker

    if method == "minmax":
        return WeightedRanker(1.0 - dense_weight, dense_weight)
    if abs(dense_weight - 0.5) < 1e-9:
        return RRFRanker(rrf_k)
    return None


open_backends: list[MilvusBackend] = []


class MilvusBackend:
    name = MILVUS

    def __init__(self, *, uri: str, token: str = "", db: str = "", timeout_s: float = 10.0):
        self.uri, self.token, self.db, self.timeout_s = uri, token, db, timeout_s
        self.lite = is_lite(uri)
        self._client = None
        self._lock = threading.Lock()
        self._collections: set[str] = set()
        open_backends.append(self)

    # ---------------------------------------------------------------- connection

    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.connect()
        return self._client

    def connect(self):
        # lazy: pymilvus and gRPC load only in processes that use a Milvus base
        from pymilvus import MilvusClient

        kwargs = {"uri": self.uri, "timeout": self.timeout_s}
        if self.token:
            kwargs["token"] = self.token
        if self.db:
            kwargs["db_name"] = self.db
        try:
            return MilvusClient(**kwargs)
        except unavailable_errors() as exc:
            raise SearchBackendUnavailable(f"Milvus at {self.where()} does not answer: {one_line(exc)}") from exc

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                except unavailable_errors():
                    pass
            self._client = None
            self._collections.clear()

    def where(self) -> str:
        return f"Milvus Lite {self.uri}" if self.lite else redact(self.uri)

    def call(self, operation: str, method: str, *args, **kwargs):
        """One client call, timed, with Milvus being down turned into SearchBackendUnavailable."""
        with observed(MILVUS, operation):
            try:
                return getattr(self.client(), method)(*args, timeout=self.timeout_s, **kwargs)
            except unavailable_errors() as exc:
                if operation == "search" or is_connection_error(exc):
                    raise SearchBackendUnavailable(f"Milvus at {self.where()}: {one_line(exc)}") from exc
                raise

    def status(self) -> BackendStatus:
        try:
            names = self.call("status", "list_collections")
        except SearchBackendUnavailable as exc:
            return BackendStatus(MILVUS, False, str(exc))
        ours = sorted(n for n in names if n.startswith(COLLECTION_PREFIX))
        return BackendStatus(MILVUS, True, f"{self.where()}; collections: {', '.join(ours) or 'none yet'}")

    # ---------------------------------------------------------------- schema

    def ensure_collection(self, dim: int) -> str:
        name = collection_name(dim)
        if name in self._collections:
            return name
        if self.call("schema", "has_collection", name):
            self.call("schema", "load_collection", name)  # made by another process: it may not be loaded
        else:
            self.create_collection(name, dim)
        self._collections.add(name)
        return name

    def create_collection(self, name: str, dim: int) -> None:
        # lazy: pymilvus and gRPC load only in processes that use a Milvus base
        from pymilvus.exceptions import MilvusException

        try:
            self.create_collection_with(name, dim, analyzer_params(self.lite))
        except MilvusException as exc:
            if self.lite or not is_unknown_tokenizer(exc):
                raise
            # `python -m milvus_lite server` behind an http:// URI: Lite's tokenizer, same terms.
            self.create_collection_with(name, dim, LITE_ANALYZER)

    def create_collection_with(self, name: str, dim: int, analyzer: dict) -> None:
        # lazy: pymilvus and gRPC load only in processes that use a Milvus base
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("kb", DataType.INT64, is_partition_key=True)
        schema.add_field("version", DataType.INT64)
        schema.add_field("kind", DataType.INT8)
        schema.add_field("ref", DataType.INT64)
        schema.add_field("terms", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                         analyzer_params=analyzer)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_function(Function(name="terms_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["terms"], output_field_names=["sparse"]))
        index = MilvusClient.prepare_index_params()
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
        index.add_index("dense", index_type="HNSW", metric_type="IP", params=HNSW_PARAMS)
        index.add_index("version", index_type="INVERTED")
        # Strong: a version is searched right after the database activates it, from any process.
        self.call("schema", "create_collection", name, schema=schema, index_params=index,
                  consistency_level="Strong")
        log.info("created Milvus collection %s (dim %d) at %s", name, dim, self.where())

    def collections(self) -> list[str]:
        return [n for n in self.call("schema", "list_collections") if n.startswith(COLLECTION_PREFIX)]

    # ---------------------------------------------------------------- versions

    def write(self, kb_id: int, version, *, model: str, fresh=None) -> dict:
        """Insert every row of a new version under its id; nothing is visible until the database activates it."""
        dim = embedding_dimension(model)
        if fresh is None:
            texts, vectors, rows, document_ids = collect_rows(kb_id, model=model)
        else:
            texts, vectors, rows, document_ids = fresh_rows(fresh, dim)
        name = self.ensure_collection(dim)
        kinds, refs = rows.kinds.tolist(), rows.refs.tolist()
        with observed(MILVUS, "write"):
            for start in range(0, len(texts), INSERT_BATCH):
                end = start + INSERT_BATCH
                batch = [{"kb": kb_id, "version": version.pk, "kind": kind, "ref": ref,
                          "terms": terms_text(analyze(text)), "dense": vector}
                         for kind, ref, text, vector in zip(kinds[start:end], refs[start:end], texts[start:end],
                                                            vectors[start:end].tolist(), strict=True)]
                self.call("write", "insert", name, batch)
            pause_point("milvus_rows_written")
            if not self.lite:
                self.call("write", "flush", name)
        return {
            "chunk_count": int((rows.kinds == ROW_CHUNK).sum()),
            "faq_count": len(set(rows.refs[rows.kinds == ROW_FAQ].tolist())),
            "dense_kind": "milvus-hnsw",
            "embedding_model": model,
            "embedding_hash": model_hash(model),
            "document_ids": document_ids,
        }

    def load(self, kb_id: int, version_id: int, number: int, embedding_model: str) -> MilvusIndex:
        dim = embedding_dimension(embedding_model or None)
        return MilvusIndex(self, kb_id, version_id, number, self.ensure_collection(dim), embedding_model)

    def prune(self, kb_id: int, keep: set[int]) -> None:
        """Delete the base's rows of every version not in ``keep`` (superseded, failed, killed mid-build)."""
        kept = ", ".join(str(v) for v in sorted(keep))
        expression = f"kb == {int(kb_id)}" + (f" and version not in [{kept}]" if kept else "")
        for name in self.collections():
            self.call("prune", "delete", name, filter=expression)

    def drop_base(self, kb_id: int) -> None:
        self.prune(kb_id, set())

    def retrieve(self, index: MilvusIndex, terms: list[str], vector: np.ndarray, depth: int):
        expression = version_filter(index)
        fields = ["kind", "ref"]
        bm25 = []
        if terms:
            found = self.call("search", "search", index.collection, data=[terms_text(terms)], anns_field="sparse",
                              limit=depth, filter=expression, output_fields=fields,
                              search_params={"metric_type": "BM25"})
            bm25 = collapse(found[0], bm25=True)
        found = self.call("search", "search", index.collection,
                          data=[np.asarray(vector, dtype=np.float32).tolist()], anns_field="dense", limit=depth,
                          filter=expression, output_fields=fields,
                          search_params={"metric_type": "IP", "params": {"ef": max(depth, 64)}})
        return bm25, collapse(found[0])

    def retrieve_many(self, index: MilvusIndex, queries, depth: int) -> list:
        """(BM25 items, dense items) of each ``(terms, vector, excluded row ids)`` query, ``depth`` rows deep
        once its excluded rows are dropped: batched searches ``depth + most excluded`` rows deep under the
        version filter, the excluded rows dropped here (as the local backend does)."""
        spare = depth + max((len(exclude) for *_, exclude in queries), default=0)
        expression, fields = version_filter(index), ["kind", "ref"]
        worded = [n for n, (terms, _, _) in enumerate(queries) if terms]
        bm25_rows: dict[int, list] = {}
        for start in range(0, len(worded), QUERIES_PER_SEARCH):
            batch = worded[start:start + QUERIES_PER_SEARCH]
            texts = [terms_text(queries[n][0]) for n in batch]
            found = self.call("search", "search", index.collection, data=texts, anns_field="sparse", limit=spare,
                              filter=expression, output_fields=fields, search_params={"metric_type": "BM25"})
            bm25_rows.update(zip(batch, found, strict=True))
        dense_rows: list = []
        for start in range(0, len(queries), QUERIES_PER_SEARCH):
            batch = queries[start:start + QUERIES_PER_SEARCH]
            vectors = [np.asarray(vector, dtype=np.float32).tolist() for _, vector, _ in batch]
            dense_rows.extend(self.call("search", "search", index.collection, data=vectors, anns_field="dense",
                                        limit=spare, filter=expression, output_fields=fields,
                                        search_params={"metric_type": "IP", "params": {"ef": max(spare, 64)}}))
        out = []
        for n, (_, _, exclude) in enumerate(queries):
            excluded = set(map(int, exclude))
            kept_bm25 = [hit for hit in bm25_rows.get(n, []) if int(hit["id"]) not in excluded][:depth]
            kept_dense = [hit for hit in dense_rows[n] if int(hit["id"]) not in excluded][:depth]
            out.append((collapse(kept_bm25, bm25=True), collapse(kept_dense)))
        return out

    def term_profiles(self, index: MilvusIndex, queries) -> list[tuple[float, float]]:
        """(ceiling, coverage) of each ``(terms, excluded row ids)`` query in the version.

        Each distinct term is searched alone (batched searches), its best row's score being the term's
        highest BM25 weight — in Milvus's own scoring (its idf and collection statistics), the scale of
        the BM25 scores ``retrieve`` returns. A term's ``1 + most excluded`` best rows are kept, so a
        query's ceiling skips its excluded rows exactly.
        """
        depth = 1 + max((len(exclude) for _, exclude in queries), default=0)
        distinct = [t for t in dict.fromkeys(t for terms, _ in queries for t in terms) if terms_text([t]).strip()]
        best_rows: dict[str, list[tuple[int, float]]] = {}
        for start in range(0, len(distinct), TERMS_PER_SEARCH):
            batch = distinct[start:start + TERMS_PER_SEARCH]
            found = self.call("search", "search", index.collection, data=[terms_text([t]) for t in batch],
                              anns_field="sparse", limit=depth, filter=version_filter(index),
                              output_fields=["kind"], search_params={"metric_type": "BM25"})
            for term, hits in zip(batch, found, strict=True):
                best_rows[term] = [(int(hit["id"]), bm25_score(hit["distance"])) for hit in hits]
        return [profile_of(terms, set(map(int, exclude)), best_rows) for terms, exclude in queries]

    def term_profile(self, index: MilvusIndex, terms: list[str], exclude=()) -> tuple[float, float]:
        return self.term_profiles(index, [(terms, exclude)])[0]

    def heading_rows(self, index: MilvusIndex) -> dict[int, list[int]]:
        """Each section heading's row (primary key), keyed by the chunk it stands for (past QUERY_LIMIT headings
        the rest are not listed: the answerability fit then holds out fewer rows, it never fails)."""
        found = self.call("search", "query", index.collection, output_fields=["id", "ref"], limit=QUERY_LIMIT,
                          filter=f"{version_filter(index)} and kind == {ROW_HEADING}")
        return heading_rows_of(found)

    def faq_rows(self, index: MilvusIndex) -> dict[int, list[int]]:
        """Each FAQ entry's rows (primary keys), in the order of its phrasings: a build inserts an entry's
        rows in that order and Milvus allocates auto ids in increasing order, so sorting by id restores it."""
        entries = list(FaqEntry.objects.filter(knowledge_base_id=index.kb_id).order_by("id")
                       .values_list("id", flat=True))
        rows_of: dict[int, list[int]] = {}
        for start in range(0, len(entries), FAQ_QUERY_BATCH):
            refs = ", ".join(str(int(e)) for e in entries[start:start + FAQ_QUERY_BATCH])
            found = self.call("search", "query", index.collection, output_fields=["id", "ref"], limit=QUERY_LIMIT,
                              filter=f"{version_filter(index)} and kind == {ROW_FAQ} and ref in [{refs}]")
            for row in sorted(found, key=lambda r: int(r["id"])):
                rows_of.setdefault(int(row["ref"]), []).append(int(row["id"]))
        return rows_of


def heading_rows_of(found) -> dict[int, list[int]]:
    return {int(row["ref"]): [int(row["id"])] for row in found}


def profile_of(terms: list[str], exclude: set[int], best_rows: dict[str, list[tuple[int, float]]]):
    """(ceiling, coverage): each term's best weight outside ``exclude``, summed over the terms (repeats
    counted, as BM25 scores a query), and the share of terms with one."""
    if not terms:
        return 0.0, 0.0
    best = [max((score for row, score in best_rows.get(term, []) if row not in exclude), default=0.0)
            for term in terms]
    return sum(best), sum(weight > 0 for weight in best) / len(terms)


def version_filter(index: MilvusIndex) -> str:
    """The one filter every search of a version uses, built from integer ids only."""
    return f"kb == {int(index.kb_id)} and version == {int(index.version_id)}"


def bm25_score(distance: float) -> float:
    """A BM25 score is never negative; Milvus Lite in a process reports it negated (smaller is better there)."""
    return abs(float(distance))


def collapse(hits, *, bm25: bool = False) -> list[tuple[tuple[str, int], float]]:
    """Rows → items, keeping each item's best row (an FAQ entry has one row per phrasing)."""
    seen: set[tuple[str, int]] = set()
    out = []
    for hit in hits:
        entity = hit["entity"]
        key = ("faq" if entity["kind"] == ROW_FAQ else "chunk", int(entity["ref"]))  # other kinds stand for a chunk
        if key not in seen:
            seen.add(key)
            out.append((key, bm25_score(hit["distance"]) if bm25 else float(hit["distance"])))
    return out


def is_connection_error(exc: BaseException) -> bool:
    # lazy: pymilvus and gRPC load only in processes that use a Milvus base
    import grpc
    from pymilvus.exceptions import MilvusUnavailableException

    if isinstance(exc, (ConnectionError, TimeoutError, MilvusUnavailableException)):
        return True
    if isinstance(exc, grpc.RpcError):
        code = getattr(exc, "code", lambda: None)()
        return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    text = str(exc).lower()
    return any(word in text for word in ("unavailable", "deadline", "connect", "timeout", "timed out"))


def one_line(exc: BaseException) -> str:
    return first_line(exc)
