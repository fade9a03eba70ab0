"""Answerability: a calibrated probability that a knowledge base answers a question, from retrieval signals.

Part of stage 5 (decide). Each question that reaches retrieval is described by a few numbers
(:class:`Features`): the top dense cosine and its margin to the second hit, the BM25 top score as a
share of the best score the query's own terms could reach in this base, how many of its terms the
base knows at all, whether BM25 and dense agree on their best item, the best FAQ similarity, the best
cosine between the question and a sentence of the top passages (extractive support), the intent, and
how close the question is to the shipped questions of other domains (``off_topic``: the mean cosine of
its ``OFF_TOPIC_NEIGHBOURS`` nearest in ``chat/data/out_of_base.jsonl``, embedded by the base's model).
"Can I get an invoice with my company's VAT number for the subscription?" shares words and a tone with a
building firm's FAQ, and also sits right beside the shipped telecom and billing questions. Out of fold
on the demo base's fit (8 seeds of folds), the in-base share lost at 95 % refusal went 0.043 → 0.016
with it; the Debian bases lost none either way. A fit computes a shipped question's own ``off_topic`` with
its whole domain left out: a customer's out-of-base question often comes from a domain the set lacks, and
a feature measured against the question's siblings would promise more than it keeps (with only the
question itself left out, the demo sets' out-of-base refusal fell to 0.90–0.93).
A per-base logistic regression (:class:`AnswerabilityModel`, fitted by :mod:`chat.answerability_fit`
on the base's own questions held out against a shipped set of out-of-base questions) turns them into
a probability, and the base's threshold — chosen so that ≥ 98 % of held-out out-of-base questions
fall below it — turns that into a decision. Models are JSON files under
``KEFU_DATA_DIR/answerability/<kb id>-<index version id>.json`` (also put in the Django cache, which
is Redis in service mode, so a web node reads what an ingest worker on another node fitted); a
process keeps the ones it read in memory. A base without a fitted model keeps the older rules
(relevance floor + support gate) and stores no probability.

The fit is plain numpy: L2-regularised logistic regression by Newton's method (IRLS), on
standardised features, classes weighted equally — so a probability reads "in the base, if in- and
out-of-base questions were equally common", whatever the number of FAQ entries.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.cache import cache

from chat.pipeline import extractive
from chat.pipeline.passages import passage_of
from chat.pipeline.sentence_vectors import sentence_vectors
from kb import embedding  # embedding.embed_texts looked up per call: tests swap it for a cache
from kb.search import active_index, analyze, term_profile
from kefu import background

log = logging.getLogger(__name__)

# Agreement: the other retriever ranks a retriever's best item this high or better.
AGREEMENT_DEPTH = 5
SUPPORT_PASSAGES = extractive.MAX_PASSAGES  # passages whose sentences count as support (as the extract reads)
SCHEMA = 4  # bumped when the features or the fit change: older model files are then ignored (and refitted, see
#   model_for). 3: the fit's ridge strength 1 → 3 (chat.answerability_fit.L2). 4: the refusal goal 0.95 → 0.97.
CACHE_PREFIX = "kefu:answerability:"
FIT_QUEUE = "ingest"  # where fits run (chat.tasks)
REFERENCE_FILE = Path(__file__).resolve().parent.parent / "data" / "out_of_base.jsonl"
OFF_TOPIC_NEIGHBOURS = 3


@dataclass(frozen=True)
class Features:
    """The retrieval signals of one question; every field is a float so the model sees a plain vector."""

    dense_top: float  # best dense cosine among the hits
    dense_margin: float  # best dense cosine minus the second best (a peaked list means one clear match)
    bm25_top: float  # best BM25 score / the best score the query's terms could reach here (0..1)
    term_coverage: float  # share of the query's terms that occur in the base at all
    agreement: float  # 0, 0.5 or 1: each retriever's best item is in the other's top AGREEMENT_DEPTH
    faq_similarity: float  # best query–FAQ-phrasing cosine (0 without FAQ hits)
    support: float  # best cosine between the question and a sentence of the top passages
    intent_faq: float  # one-hot intent label ...
    intent_knowledge: float
    intent_out_of_scope: float
    intent_confidence: float  # ... and the classifier's confidence in it
    off_topic: float  # mean cosine of the nearest shipped out-of-base questions (other domains)

    def as_vector(self) -> np.ndarray:
        return np.array([getattr(self, name) for name in FEATURE_NAMES], dtype=np.float64)


FEATURE_NAMES = tuple(f.name for f in fields(Features))


@dataclass(frozen=True)
class Score:
    """What the decision reads: the probability and the base's threshold for it."""

    probability: float
    threshold: float

    @property
    def answerable(self) -> bool:
        return self.probability >= self.threshold


# ---------------------------------------------------------------- features


def features_of(*, hits: list, intent, support: float, bm25_ceiling: float, term_coverage: float,
                off_topic: float) -> Features:
    """Features of one question from its fused hits (``found_by`` carries each retriever's rank and score)."""
    dense = sorted((h.found_by["dense"].score for h in hits if "dense" in h.found_by), reverse=True)
    bm25 = [h.found_by["bm25"].score for h in hits if "bm25" in h.found_by]
    faq = [h.similarity for h in hits if h.similarity is not None]
    label = intent.label if intent is not None else ""
    return Features(
        dense_top=dense[0] if dense else 0.0,
        dense_margin=(dense[0] - dense[1]) if len(dense) > 1 else (dense[0] if dense else 0.0),
        bm25_top=min(1.0, max(bm25) / bm25_ceiling) if bm25 and bm25_ceiling > 0 else 0.0,
        term_coverage=term_coverage,
        agreement=retriever_agreement(hits),
        faq_similarity=max(faq) if faq else 0.0,
        support=support,
        intent_faq=float(label == "faq"),
        intent_knowledge=float(label == "knowledge"),
        intent_out_of_scope=float(label == "out_of_scope"),
        intent_confidence=float(intent.confidence) if intent is not None else 0.0,
        off_topic=off_topic,
    )


def retriever_agreement(hits: list) -> float:
    """Half a point for each retriever whose rank-1 item the other ranks in its top ``AGREEMENT_DEPTH``."""
    points = 0.0
    for mine, other in (("dense", "bm25"), ("bm25", "dense")):
        top = next((h for h in hits if mine in h.found_by and h.found_by[mine].rank == 1), None)
        if top is not None and other in top.found_by and top.found_by[other].rank <= AGREEMENT_DEPTH:
            points += 0.5
    return points


def embed_like_index(index, texts: list[str]) -> np.ndarray:
    """Texts embedded by the model the index version's vectors come from (the base's own)."""
    return embedding.embed_texts(texts, model=index.embedding_model or None, batch_size=64)  # blank: the process default


# ---------------------------------------------------------------- the shipped questions of other domains


@functools.cache
def reference_rows() -> tuple[dict, ...]:
    """The shipped out-of-base questions (English and Chinese, many domains), in file order."""
    lines = REFERENCE_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


def reference_questions() -> list[str]:
    return [row["question"] for row in reference_rows()]


@functools.cache
def reference_domains() -> np.ndarray:
    return np.array([row.get("domain", "") for row in reference_rows()])


@functools.cache
def reference_positions() -> dict[str, int]:
    return {row["question"]: position for position, row in enumerate(reference_rows())}


def reference_domain_mask(text: str) -> np.ndarray | None:
    """For one of the shipped questions, every shipped question of its domain (a fit leaves them out of its
    ``off_topic``, as if its domain were one the set has never seen); None for any other text."""
    position = reference_positions().get(text)
    if position is None:
        return None
    domains = reference_domains()
    return domains == domains[position]


_reference_vectors: dict[str, np.ndarray] = {}
_reference_lock = threading.Lock()


def reference_vectors(index) -> np.ndarray:
    """(R, D) the shipped questions embedded by the index version's model, once per model and process."""
    return model_reference_vectors(index.embedding_model or "")


def model_reference_vectors(model: str) -> np.ndarray:
    """(R, D) the shipped questions embedded by ``model`` (blank: the process default), once per process."""
    found = _reference_vectors.get(model)
    if found is None:
        with _reference_lock:
            found = _reference_vectors.get(model)
            if found is None:
                found = np.asarray(embedding.embed_texts(list(reference_questions()), model=model or None,
                                                         batch_size=64), dtype=np.float32)
                _reference_vectors[model] = found
    return found


def warm_references() -> None:
    """Embed the shipped questions by the process default model ahead of the first question (the web
    process's warm-up, :mod:`kefu.runtime`); a base on another model embeds them on its first question."""
    model_reference_vectors(embedding.default_model_name())


def off_topic_similarity(vector: np.ndarray, references: np.ndarray, *, leave_out: np.ndarray | None = None
                         ) -> float:
    """Mean cosine of ``vector``'s ``OFF_TOPIC_NEIGHBOURS`` nearest reference questions (``leave_out``: a mask
    of references not to count — a shipped question's own domain, when a fit asks it)."""
    similarity = references @ np.asarray(vector, dtype=np.float32)  # (R,)
    if leave_out is not None:
        similarity[leave_out] = -1.0
    count = min(OFF_TOPIC_NEIGHBOURS, similarity.size)
    if count == 0:
        return 0.0
    return float(np.partition(similarity, -count)[-count:].mean())


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class AnswerabilityModel:
    """A fitted per-base calibrator: standardisation, logistic weights and the decision threshold."""

    knowledge_base_id: int
    index_version_id: int
    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    # what the fit measured on held-out data, for the command's report and the staff
    positives: int = 0
    negatives: int = 0
    heldout_refusal: float = 0.0  # out-of-base questions below the threshold
    heldout_in_base_loss: float = 0.0  # in-base questions below the threshold
    schema: int = SCHEMA

    def probability(self, features: Features) -> float:
        return float(self.probabilities(features.as_vector()[None, :])[0])

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """(N,) probabilities of an (N, F) feature matrix."""
        standard = (matrix - np.asarray(self.mean)) / np.asarray(self.scale)
        return sigmoid(standard @ np.asarray(self.coef) + self.intercept)

    def score(self, features: Features) -> Score:
        return Score(self.probability(features), self.threshold)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AnswerabilityModel | None:
        data = json.loads(text)
        if data.get("schema") != SCHEMA or tuple(data.get("feature_names", ())) != FEATURE_NAMES:
            return None  # written for other features: the base falls back until its next fit
        for name in ("feature_names", "mean", "scale", "coef"):
            data[name] = tuple(data[name])
        return cls(**data)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def logistic_fit(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, balanced: bool = True,
                 iterations: int = 100) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method (IRLS); returns (coef, intercept).

    ``x`` (N, F) should be standardised; the intercept is not penalised. ``balanced`` weights each
    class to half the total, as if the classes were equally common.
    """
    n, f = x.shape
    y = y.astype(np.float64)
    weight = np.ones(n)
    if balanced:
        positives = y.sum()
        weight = np.where(y > 0, n / (2 * max(positives, 1)), n / (2 * max(n - positives, 1)))
    design = np.hstack([x, np.ones((n, 1))])  # (N, F+1)
    penalty = np.eye(f + 1) * l2
    penalty[f, f] = 0.0
    w = np.zeros(f + 1)
    for _ in range(iterations):
        p = sigmoid(design @ w)  # (N,)
        gradient = design.T @ (weight * (p - y)) + penalty @ w  # (F+1,)
        hessian = (design.T * (weight * p * (1 - p))) @ design + penalty  # (F+1, F+1)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(f + 1), gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:f], float(w[f])


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale; a constant feature gets scale 1 (it then carries no weight)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 1e-9, scale, 1.0)


def refusal_threshold(negative: np.ndarray, positive: np.ndarray, *, refusal: float = 0.95) -> float:
    """The lowest threshold that refuses at least ``refusal`` of ``negative`` (scores below it are refused).

    The lowest such threshold loses the fewest ``positive`` scores. It is placed halfway between the
    highest negative that must be refused and the next score above it, not on a sample point.
    """
    negative = np.sort(np.asarray(negative, dtype=np.float64))[::-1]
    if negative.size == 0:
        return 0.5
    allowed = int(math.floor((1.0 - refusal) * negative.size + 1e-9))  # negatives that may pass
    if allowed >= negative.size:
        return 0.0
    must_refuse = negative[allowed]
    above = np.concatenate([negative, np.asarray(positive, dtype=np.float64)])
    above = above[above > must_refuse]
    return float((must_refuse + above.min()) / 2) if above.size else float(np.nextafter(must_refuse, 2.0))


# ---------------------------------------------------------------- storage and lookup


def models_dir() -> Path:
    return Path(settings.KEFU_DATA_DIR) / "answerability"


def model_path(kb_id: int, index_version_id: int) -> Path:
    return models_dir() / f"{kb_id}-{index_version_id}.json"


# (models folder, kb id, index version id) → model; the folder keeps processes that switch data dirs honest
_models: dict[tuple[str, int, int], AnswerabilityModel] = {}
_models_lock = threading.Lock()
# A version without its own model yet: what served instead, and when that was looked up. Each message
# asks; looking again (the cache, the file, the folder) is left for RECHECK_SECONDS.
_fallbacks: dict[tuple[str, int, int], tuple[float, AnswerabilityModel | None]] = {}
RECHECK_SECONDS = 15.0


def model_save(model: AnswerabilityModel) -> Path:
    """Write the model file atomically and share it through the cache; remember it in this process."""
    path = model_path(model.knowledge_base_id, model.index_version_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}")
    temporary.write_text(model.to_json(), encoding="utf-8")
    temporary.replace(path)
    cache.set(cache_key(model.knowledge_base_id, model.index_version_id), model.to_json(), timeout=None)
    key = memory_key(model.knowledge_base_id, model.index_version_id)
    with _models_lock:
        _models[key] = model
        _fallbacks.pop(key, None)
    return path


def memory_key(kb_id: int, index_version_id: int) -> tuple[str, int, int]:
    return str(models_dir()), kb_id, index_version_id


def cache_key(kb_id: int, index_version_id: int) -> str:
    return f"{CACHE_PREFIX}{kb_id}-{index_version_id}"


def model_for(kb_id: int, index_version_id: int | None) -> AnswerabilityModel | None:
    """The model fitted for this base at this index version: memory, then the cache, then the file.

    Not fitted yet (a re-index just switched versions, the fit is queued): the base's newest model of
    an earlier version of this base serves meanwhile — its signals barely move with one upload.
    """
    if index_version_id is None:
        return None
    key = memory_key(kb_id, index_version_id)
    found = _models.get(key)
    if found is not None:
        return found
    looked = _fallbacks.get(key)
    if looked is not None and time.monotonic() - looked[0] < RECHECK_SECONDS:
        return looked[1]
    found = model_read(kb_id, index_version_id)
    if found is not None:
        with _models_lock:
            for stale in [k for k in _models if k[:2] == key[:2]]:
                del _models[stale]
            _models[key] = found
        return found
    fallback = previous_model(kb_id, index_version_id)
    _fallbacks[key] = (time.monotonic(), fallback)
    return fallback


def model_read(kb_id: int, index_version_id: int) -> AnswerabilityModel | None:
    text = cache.get(cache_key(kb_id, index_version_id))
    if text is None:
        path = model_path(kb_id, index_version_id)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return None
    try:
        model = AnswerabilityModel.from_json(text)
    except (ValueError, TypeError, KeyError):
        log.warning("answerability model of kb %s v%s unreadable; rules apply", kb_id, index_version_id)
        return None
    if model is None:
        refit_stale(kb_id, index_version_id)
    return model


_refits_requested: set[tuple[str, int, int]] = set()


def refit_stale(kb_id: int, index_version_id: int) -> None:
    """A model fitted for other features (an upgrade changed them): the rules serve while it is fitted
    again on the ingest queue — asked once per process and version."""
    key = memory_key(kb_id, index_version_id)
    with _models_lock:
        if key in _refits_requested:
            return
        _refits_requested.add(key)
    log.info("answerability model of kb %s v%s is from older features; refitting", kb_id, index_version_id)
    background.enqueue("chat.answerability_fit", kb_id, index_version_id, queue=FIT_QUEUE)


def previous_model(kb_id: int, index_version_id: int) -> AnswerabilityModel | None:
    """The newest model in memory or on disk for an earlier index version of this base."""
    folder = str(models_dir())
    earlier = [(k[2], m) for k, m in _models.items() if k[:2] == (folder, kb_id) and k[2] < index_version_id]
    if earlier:
        return max(earlier, key=lambda item: item[0])[1]
    versions = []
    for path in models_dir().glob(f"{kb_id}-*.json"):
        number = path.stem.partition("-")[2]
        if number.isdigit() and int(number) < index_version_id:
            versions.append(int(number))
    for number in sorted(versions, reverse=True):
        model = model_read(kb_id, number)
        if model is not None:
            return model
    return None


def forget_models() -> None:
    """Drop the models this process holds (tests; a process that changed KEFU_DATA_DIR)."""
    with _models_lock:
        _models.clear()
        _fallbacks.clear()
        _refits_requested.clear()


# ---------------------------------------------------------------- the stage's entry point


def answerability_score(*, kb, hits: list, intent, query: str, query_vector) -> Score | None:
    """The question's probability and the base's threshold, or None while the base has no model."""
    model = model_for(kb.pk, kb.active_index_id)
    index = active_index(kb.pk) if model is not None else None
    if model is None or index is None or query_vector is None:
        return None
    profile = term_profile(index, analyze(query))  # either backend: its own BM25's ceiling
    passages = [passage_of(hit, n) for n, hit in enumerate(hits[:SUPPORT_PASSAGES], 1)]
    # The extract that follows embeds the same sentences: they are remembered (sentence_vectors).
    support = extractive.support_score(question_vector=query_vector, passages=passages,
                                       embed=partial(sentence_vectors, model=index.embedding_model or None))
    features = features_of(hits=hits, intent=intent, support=support, bm25_ceiling=profile.ceiling,
                           term_coverage=profile.coverage,
                           off_topic=off_topic_similarity(query_vector, reference_vectors(index)))
    return model.score(features)


class LazyScore:
    """A question's score computed on first call only (the decision asks for it only when it matters)."""

    def __init__(self, compute: Callable[[], Score | None]):
        self.compute = compute
        self.computed = False
        self.value: Score | None = None

    def __call__(self) -> Score | None:
        if not self.computed:
            self.value, self.computed = self.compute(), True
        return self.value

    @property
    def probability(self) -> float | None:
        """The probability when it was computed (what the reply stores), else None."""
        return self.value.probability if self.value is not None else None


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class ReliabilityRow:
    """One bin of a reliability table: predicted probabilities in [low, high) against what happened."""

    low: float
    high: float
    count: int
    mean_predicted: float | None
    observed_rate: float | None


def reliability_table(pairs, *, bins: int = 10) -> list[ReliabilityRow]:
    """Bin (predicted probability, observed correct) pairs by probability: a calibrated model's rows have
    mean_predicted ≈ observed_rate. ``bins`` equal-width bins on [0, 1] (the last one includes 1.0);
    empty bins are kept, with None for their means."""
    rows = []
    values = [(min(max(float(p), 0.0), 1.0), bool(correct)) for p, correct in pairs]
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        inside = [(p, c) for p, c in values if low <= p < high or (index == bins - 1 and p == 1.0)]
        count = len(inside)
        rows.append(ReliabilityRow(
            low=low, high=high, count=count,
            mean_predicted=sum(p for p, _ in inside) / count if count else None,
            observed_rate=sum(c for _, c in inside) / count if count else None,
        ))
    return rows
