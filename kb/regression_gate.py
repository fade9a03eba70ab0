"""The regression gate: a new index version may not answer the base's own evaluation set worse than the active one.

Every index build of a base that already serves is measured before it is activated. The
evaluation set is the base's own:

- the held-out fold of its FAQ pairs — each phrasing of every fifth FAQ entry (by id) whose
  answer came from a document, with that document as the expected source; the FAQ rows
  themselves are left out of these searches (their questions are the labels' twins);
- every :class:`kb.models.EvalCase` — questions staff confirmed through a knowledge gap or a
  resolved thumbs-down, with the FAQ entry or document that answers them.

Both versions are searched exactly as the chat searches (each with its own embedding model and
the base's fusion), and nDCG@10 is compared; apps above kb add comparisons of their own through
:data:`GATE_CHECKS` (the chat app: answerability accuracy), so kb imports none of them. A candidate
more than ``TOLERANCE`` below the active version on any figure is *held*: it is kept on disk, not activated, and the KB page shows both figures and the
reason; an admin can activate it anyway (a forced rebuild). Bases with fewer than ``MIN_CASES``
cases, and first builds, pass without a comparison (nothing to compare with).

Budget: one batched embedding pass per version and two searches per case — ~1 s for 100 cases
on 2 cores (the embedder dominates).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from django.conf import settings

from kb import embedding  # embedding.embed_texts looked up per call: tests swap it for a cache
from kb.evaluation import DEPTH, EvalQuery, chunk_candidates, score_lists
from kb.models import Chunk, FaqEntry
from kb.retrieval.search import candidates, fuse

TOLERANCE = 0.02
MIN_CASES = 10
HELD_OUT_EVERY = 5  # FAQ entries whose id is a multiple of this form the held-out fold
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateCase:
    query: str
    relevant: tuple[str, ...]  # "doc:<id>" / "faq:<id>" labels
    include_faq: bool  # FAQ rows compete too (stored cases); not for held-out pairs (their own questions)


@dataclass(frozen=True)
class GateFigure:
    """One more comparison of the two versions, higher is better (e.g. answerability accuracy)."""

    name: str
    candidate: float
    active: float

    @property
    def dropped(self) -> bool:
        return self.candidate < self.active - TOLERANCE


@dataclass(frozen=True)
class GateReport:
    cases: int
    candidate_ndcg: float | None
    active_ndcg: float | None
    passed: bool
    reason: str
    figures: tuple[GateFigure, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


# Comparisons registered by apps above kb: check(knowledge_base, candidate=, active=, cases=) -> GateFigure | None
# (None: nothing to compare, e.g. no model fitted yet). Registered once, at app start-up.
GATE_CHECKS: list[Callable[..., GateFigure | None]] = []


def held_out_cases(knowledge_base) -> list[GateCase]:
    """Each phrasing of the held-out FAQ entries → the document their answer came from."""
    cases = []
    entries = (knowledge_base.faq_entries.filter(source_document__isnull=False, source_document__chunk_count__gt=0)
               .order_by("id"))
    for entry in entries:
        if entry.pk % HELD_OUT_EVERY == 0:
            cases.extend(GateCase(p, (f"doc:{entry.source_document_id}",), False) for p in entry.phrasings)
    return cases


def stored_cases(knowledge_base) -> list[GateCase]:
    out = []
    for case in knowledge_base.eval_cases.all():
        label = f"faq:{case.faq_entry_id}" if case.faq_entry_id else f"doc:{case.document_id}"
        out.append(GateCase(case.question, (label,), True))
    return out


def evaluation_cases(knowledge_base) -> list[GateCase]:
    return held_out_cases(knowledge_base) + stored_cases(knowledge_base)


def index_ndcg(knowledge_base, index, cases: Sequence[GateCase]) -> float:
    """Mean nDCG@10 of the cases on one loaded index version (kb.indexing.LoadedIndex)."""
    vectors = embedding.embed_texts([case.query for case in cases], model=index.embedding_model or None,
                                    batch_size=settings.KEFU_KB_EMBED_BATCH)
    ranked_keys = []
    for case, vector in zip(cases, vectors, strict=True):
        found = candidates(index, case.query, settings.KEFU_KB_CANDIDATES, query_vector=vector)
        found = found if case.include_faq else chunk_candidates(found)
        fused = fuse(found, dense_weight=knowledge_base.fusion_dense_weight, rrf_k=knowledge_base.fusion_rrf_k,
                     limit=DEPTH, method=knowledge_base.fusion_method)
        ranked_keys.append([f.key for f in fused])
    labels = source_labels({key for keys in ranked_keys for key in keys})
    ranked = [[labels.get(key, set()) for key in keys] for keys in ranked_keys]
    return score_lists(ranked, [EvalQuery(c.query, c.relevant) for c in cases]).ndcg10


def source_labels(keys: set[tuple[str, int]]) -> dict[tuple[str, int], set[str]]:
    """``doc:<id>`` for a chunk; ``faq:<id>`` and its source document's ``doc:<id>`` for a FAQ entry."""
    out: dict[tuple[str, int], set[str]] = {}
    chunk_ids = [ref for kind, ref in keys if kind == "chunk"]
    for chunk_id, document_id in Chunk.objects.filter(pk__in=chunk_ids).values_list("id", "document_id"):
        out[("chunk", chunk_id)] = {f"doc:{document_id}"}
    faq_ids = [ref for kind, ref in keys if kind == "faq"]
    for entry_id, document_id in FaqEntry.objects.filter(pk__in=faq_ids).values_list("id", "source_document_id"):
        out[("faq", entry_id)] = {f"faq:{entry_id}"} | ({f"doc:{document_id}"} if document_id else set())
    return out


def version_gate(knowledge_base, *, candidate, active) -> GateReport:
    """Compare a built version with the active one on the base's evaluation set."""
    cases = evaluation_cases(knowledge_base)
    if active is None:
        return GateReport(len(cases), None, None, True, "first version: nothing to compare with")
    if len(cases) < MIN_CASES:
        return GateReport(len(cases), None, None, True,
                          f"{len(cases)} evaluation cases (under {MIN_CASES}): not compared")
    new, old = index_ndcg(knowledge_base, candidate, cases), index_ndcg(knowledge_base, active, cases)
    figures = tuple(extra_figures(knowledge_base, candidate=candidate, active=active, cases=cases))
    passed = new >= old - TOLERANCE and not any(f.dropped for f in figures)
    verdict = "within" if new >= old - TOLERANCE else "more than"
    reason = (f"nDCG@10 on {len(cases)} evaluation cases: {new:.3f} against {old:.3f} for the active version "
              f"({new - old:+.3f}, {verdict} the {TOLERANCE} tolerance)")
    for figure in figures:
        verdict = "more than" if figure.dropped else "within"
        reason += (f"; {figure.name}: {figure.candidate:.3f} against {figure.active:.3f} "
                   f"({figure.candidate - figure.active:+.3f}, {verdict} the tolerance)")
    return GateReport(len(cases), round(new, 4), round(old, 4), passed, reason, figures)


def extra_figures(knowledge_base, *, candidate, active, cases) -> list[GateFigure]:
    """The registered checks' figures; a check that fails is logged and left out (it never blocks a build)."""
    out = []
    for check in GATE_CHECKS:
        try:
            figure = check(knowledge_base, candidate=candidate, active=active, cases=cases)
        except Exception:
            log.exception("regression gate check %s failed; the build is judged without it", check.__name__)
            continue
        if figure is not None:
            out.append(figure)
    return out
