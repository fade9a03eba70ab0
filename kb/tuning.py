"""Tuning a knowledge base's embedder on the base's own labelled pairs, adopted only when it measurably helps.

The pairs the base already has: each FAQ phrasing (question and alternatives) → its answer and the
text of its source document, each alternative → its question, and each document's title or section
heading → the section's text (chunks carry ``heading_path``). Training is contrastive with in-batch
negatives (MultipleNegativesRanking: cosine × scale as logits, cross-entropy towards the pair's own
target, both directions), in a plain torch loop — sentence-transformers' ``fit`` needs ``datasets``.
Pairs of one item (an FAQ entry, a section) are never each other's negatives.

Adoption rule: 2-fold evaluation on the base's own pairs, split by item. Train on fold A, measure
nDCG@10 of question → answer retrieval for fold B's questions (against every target of the base)
with the tuned and the current model, and the other way round. Only a mean held-out gain of at
least ``min_gain`` adopts: the adopted model is the two fold models' weight average (a "soup": together they saw
every pair, and no third training is needed; ``final="retrain"`` trains once more on all pairs instead), saved under
``KEFU_DATA_DIR/models/tuned/<slug>/<hash12>`` and the base switches to it through a new index
version (kb.indexing re-embeds everything; the old version serves until the swap). Evaluation
sets are never trained on: chat/data/eval and bench sets are never read here, and the FAQ entries the
regression gate holds out (kb.regression_gate, every fifth by id) are left out of the pairs with their
source documents, so the gate measures a tuned model on questions it never saw.

Every torch step runs on the compute thread (:mod:`kefu.compute`), one optimizer step per job, so
chat queries and the generator's decode loop interleave with training instead of waiting for it.

Budget: ≤ 5 minutes for ~500 pairs on 2 cores. The lower half of the transformer stays as shipped
(``TuningConfig.frozen_share``, :mod:`kb.frozen_layers`): what it computes for each training text is computed once
and every training step and measurement runs the upper half only. The demo base on all-mpnet-base-v2 (403 pairs once
the gate's fold is out; 3 epochs at batch 32, 128 tokens): the two fold trainings, their measurements, the soup, the
re-embedding of 1,006 rows with their token store and the gate took 214 s on one thread of an AMD Zen 5 (session 19;
its 2-fold measurement 144 s against 318 s with every layer trained, in one run; BENCHMARKS.md). Memory: the model
in fp32 three times over (weights, gradients, AdamW state — the gradients and optimizer state of the trained half
only), the frozen layers' states of every text (fp32: the demo's 802 texts, 27,709 word pieces, 81 MB on mpnet),
plus activations of one batch, plus the first fold model's weights kept for the soup while the second trains.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from kb.embedding import (
    ADAPTER_DIR,
    TUNED_MANIFEST,
    get_embedder,
    knowledge_base_model,
    model_source,
    sentence_transformer,
    transformer_of,
    tuned_model_dir,
    tuned_model_name,
)
from kb.frozen_layers import StateCache, freeze, frozen_count, replaying, states_compute
from kb.indexing import INDEXED_STATUSES, index_build
from kb.models import Chunk, FaqEntry, IndexVersion, KnowledgeBase, TuningRun
from kb.regression_gate import HELD_OUT_EVERY
from kefu import compute
from kefu.compute import cpu_has_fast_bf16

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=10)  # a running job saves progress every few seconds; silent this long, it died
DEPTH = 10  # nDCG@10
METHODS = ("full", "lora")


@dataclass(frozen=True)
class TuningConfig:
    """How a base's embedder is trained; one field per knob."""

    # "full" fine-tuning or "lora" (peft adapters, r=16 on query/key/value/dense). Measured on the demo base
    # (BENCHMARKS.md): the same held-out gain (+0.049 vs +0.054 nDCG@10) and training time; LoRA stores 2.7 MB
    # a base instead of 45 MB but loads in ~5 s instead of ~1 s (parent + merge) and needs peft: full it is.
    method: str = "full"
    # Passes over the pairs. With the blend below, the demo's 2-fold gain was +0.020 at 2 (at the adoption line,
    # where another CPU's rounding could drop it), +0.031 at 3, +0.034 at 4 (Zen 4, session 10); 3 keeps the whole
    # job at 2½–3 minutes here.
    epochs: int = 3
    batch_size: int = 32  # pairs per step; the other 31 targets are each pair's negatives
    # AdamW, full fine-tuning. 3e-5 while every layer trained; with half of them frozen (below) the demo's gain
    # fell to +0.018 at 3e-5 and came back to +0.028 at 6e-5 (session 19).
    learning_rate: float = 6e-5
    lora_learning_rate: float = 5e-4  # AdamW, LoRA adapters only (they start at zero and need bigger steps)
    lora_rank: int = 16  # r of the LoRA matrices (the seeds' choice for domain adaptation)
    lora_alpha: int = 32  # LoRA scaling numerator (alpha / r = 2)
    warmup_share: float = 0.1  # share of the steps the learning rate ramps up over, then linear decay to 0
    scale: float = 20.0  # logits = cosine × scale (MultipleNegativesRanking's default)
    max_seq_length: int = 128  # tokens per text while training (the start of an answer carries its topic)
    max_section_chunks: int = 3  # chunks of one section used as its targets (long documents do not dominate)
    min_items: int = 8  # fewer labelled items than this: too few to split in two folds and measure
    min_gain: float = 0.02  # mean held-out nDCG@10 gain a tuned model needs to be adopted
    # The trained weights' share in the saved model; the rest is the starting model's (weight-space ensembling,
    # "WiSE-FT", Wortsman et al. 2022). Trained alone, the demo's model took what is not in the base for what is
    # ("How do I reverse a list in Python?" found reverse-charge VAT) and refused more in-base questions. Measured
    # on the demo base (Zen 4, session 10; in-base right / refused / out-of-base refused, four sets together):
    # 1.0 → 0.81 / 0.052 / 0.92, 0.7 → 0.83 / 0.030 / 0.92, 0.5 → 0.83 / 0.030 / 0.93; untuned 0.80 / 0.039 / 0.94.
    tuned_share: float = 0.5
    # The adopted model: "soup" averages the two fold models' weights (each trained on half the items; "model
    # soups", Wortsman et al. 2022), so the job trains twice instead of three times; "retrain" trains once more on
    # all pairs. LoRA always retrains (averaging adapters' factors is not averaging their updates). Measured on the
    # demo base (Zen 3, session 13; in-base right, extractive): the five blind sets 205 → 208 of 300, the own sets
    # 151 → 145 of 170 — within noise together — and the whole job 390 s → 253 s, inside the 5-minute budget.
    final: str = "soup"
    # Share of the transformer's lower layers (and its embeddings) kept as shipped in full fine-tuning: their output
    # for each text is computed once and replayed (kb.frozen_layers), so training and measuring run the upper
    # layers only; 0 trains every layer. The demo base on all-mpnet-base-v2 (Zen 5, session 19, one torch thread):
    # the 2-fold measurement 144 s at 0.5 against 318 s with every layer trained (one run, bench/tune_frozen.py),
    # the whole job 214 s; gain +0.028 both; the nine blind sets' in-base right 422 vs 420 of 540, follow-ups 235
    # vs 233 of 290 (BENCHMARKS.md, "Embedder tuning").
    frozen_share: float = 0.5
    # A hard negative per FAQ pair: one of the ``hard_negative_depth`` training targets of other items the current
    # model ranks highest for the pair's query, as one more negative of its batch — the near neighbours a base
    # confuses (two ROT entries, two guarantee entries) rather than random ones. Off: on the demo base (session 19,
    # every layer trained) the gain was +0.029 against +0.028 without, the blind sets' in-base right 419 vs 420 of
    # 540 — and the job took 714 s instead of ~550 (a negative pads its batch to the longest text).
    hard_negatives: bool = False
    hard_negative_depth: int = 10
    seed: int = 13  # fold split, shuffling and initialisation


@dataclass(frozen=True)
class Pair:
    """One labelled pair: a query and a text that answers it, and the item (FAQ entry, section) it labels."""

    query: str
    target: str
    item: str  # "faq:<id>" or "section:<document id>:<heading>"; folds split by item
    from_faq: bool  # the query is an FAQ phrasing (evaluated as question → answer retrieval)
    negative: str = ""  # a hard negative target of another item ("": none)
    negative_item: str = ""  # its item


@dataclass(frozen=True)
class FoldResult:
    fold: int
    train_pairs: int
    test_queries: int
    before: float  # held-out nDCG@10 with the current model
    after: float  # held-out nDCG@10 with the model trained on the other fold

    @property
    def gain(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class TuningOutcome:
    folds: tuple[FoldResult, ...]
    gain: float
    adopted: bool
    reason: str
    tuned_model: str = ""


class TuningRejected(Exception):
    """A tuning run that cannot start (one is already running); the message says why."""


# ---------------------------------------------------------------------------- starting and running a job


def tuning_start(*, knowledge_base: KnowledgeBase, enqueue: bool = True, method: str = "") -> TuningRun:
    """Record a queued run and enqueue it on the ingest queue (on commit); one active run per base."""
    method = method or TuningConfig().method
    if method not in METHODS:
        raise TuningRejected(f"Unknown tuning method {method!r}: use {' or '.join(METHODS)}.")
    if method == "lora" and importlib.util.find_spec("peft") is None:
        raise TuningRejected("LoRA tuning needs the peft package: pip install 'kefu[lora]'.")
    tuning_runs_interrupted(older_than=STALE_AFTER)
    with transaction.atomic():
        KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
        if TuningRun.objects.filter(knowledge_base=knowledge_base, status__in=TuningRun.ACTIVE_STATUSES).exists():
            raise TuningRejected("A tuning run of this knowledge base is already queued or running.")
        run = TuningRun.objects.create(knowledge_base=knowledge_base, method=method)
        if enqueue:
            transaction.on_commit(lambda: tuning_enqueue(run.pk))
    return run


def tuning_enqueue(run_id: int) -> None:
    from kefu import background  # lazy: kefu.background loads Celery; the web process imports this module

    background.enqueue("kb.tune_embedder", run_id)  # by name: the tasks module imports this one


def tuning_runs_interrupted(*, older_than: timedelta | None = None, statuses=TuningRun.ACTIVE_STATUSES) -> int:
    """Mark runs whose process stopped (no progress saved for ``older_than``; None: every active one) failed."""
    stuck = TuningRun.objects.filter(status__in=statuses)
    if older_than is not None:
        stuck = stuck.filter(updated_at__lt=timezone.now() - older_than)
    return stuck.update(status=TuningRun.Status.FAILED, stage="interrupted", updated_at=timezone.now(),
                        error_message="The tuning job was interrupted: its process stopped before it finished.")


def tuning_runs_resume(*, older_than: timedelta | None = None) -> int:
    """Take up what a stopped process left: a run it was running is marked failed (it starts over only when asked
    again); a queued run whose job never started (``older_than``: not for that long) is enqueued again — the job
    claims it once (:func:`tuning_run`). Returns how many were enqueued."""
    tuning_runs_interrupted(older_than=older_than, statuses=(TuningRun.Status.RUNNING,))
    waiting = TuningRun.objects.filter(status=TuningRun.Status.QUEUED)
    if older_than is not None:
        waiting = waiting.filter(updated_at__lt=timezone.now() - older_than)
    ids = list(waiting.values_list("id", flat=True))
    for run_id in ids:
        tuning_enqueue(run_id)
    return len(ids)


def tuning_run(*, run_id: int, config: TuningConfig | None = None, adopt: bool = True) -> TuningRun:
    """Run one queued tuning job to its end (the plain function the task wraps); never raises for the job's own
    failures — the run ends ``failed`` with the reason. ``adopt=False`` measures the folds only."""
    claimed = TuningRun.objects.filter(pk=run_id, status=TuningRun.Status.QUEUED).update(
        status=TuningRun.Status.RUNNING, stage="collecting pairs", progress=1, updated_at=timezone.now())
    run = TuningRun.objects.select_related("knowledge_base").get(pk=run_id)
    if not claimed:
        return run
    config = replace(config or TuningConfig(), method=run.method or (config or TuningConfig()).method)
    started = time.perf_counter()
    progress = RunProgress(run_id)
    try:
        outcome = knowledge_base_tune(knowledge_base=run.knowledge_base, config=config, progress=progress,
                                      adopt=adopt)
    except Exception as exc:
        log.exception("tuning run %s failed", run_id)
        TuningRun.objects.filter(pk=run_id).update(
            status=TuningRun.Status.FAILED, stage="failed", seconds=time.perf_counter() - started,
            error_message=f"{type(exc).__name__}: {exc}"[:2000], updated_at=timezone.now())
    else:
        TuningRun.objects.filter(pk=run_id).update(
            status=TuningRun.Status.DONE, stage="done", progress=100, seconds=round(time.perf_counter() - started, 1),
            folds=[{**asdict(f), "gain": f.gain} for f in outcome.folds], gain=outcome.gain,
            adopted=outcome.adopted, reason=outcome.reason, tuned_model=outcome.tuned_model,
            updated_at=timezone.now())
    run.refresh_from_db()
    return run


class RunProgress:
    """Stage and % of a run, saved at most every second (the save is also the run's heartbeat)."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.saved_at = 0.0

    def __call__(self, stage: str, percent: float, *, force: bool = False, **fields) -> None:
        now = time.monotonic()
        if force or fields or now - self.saved_at >= 1.0:
            self.saved_at = now
            TuningRun.objects.filter(pk=self.run_id).update(stage=stage[:100], progress=max(1, min(99, int(percent))),
                                                            updated_at=timezone.now(), **fields)


def knowledge_base_tune(*, knowledge_base: KnowledgeBase, config: TuningConfig, progress: Callable = None,
                        adopt: bool = True) -> TuningOutcome:
    """Measure 2-fold, then (gain ≥ min_gain) average the fold models (or train on all pairs), save the artifact
    and switch the base to it."""
    progress = progress or (lambda *args, **kwargs: None)
    current = knowledge_base_model(knowledge_base)
    pairs = training_pairs(knowledge_base.pk, config)
    items = sorted({p.item for p in pairs})
    progress("collecting pairs", 2, force=True, pair_count=len(pairs), base_model=current, method=config.method)
    if len(items) < config.min_items:
        return TuningOutcome((), 0.0, False, f"Too few labelled pairs to measure a gain: {len(items)} items "
                                             f"(FAQ entries and sections), {config.min_items} needed.")
    folds = fold_split(items, config.seed)
    corpus = sorted({p.target for p in pairs})
    tests = [evaluation_queries([p for p in pairs if p.item in held_out]) for held_out in folds]
    progress("measuring the current model", 3, force=True)
    baseline = training_model(current, config)
    cache = lower_states(baseline, config, [*corpus, *(p.query for p in pairs)])
    corpus_vectors = encode(baseline, corpus, cache=cache)  # once for both folds
    before = [retrieval_ndcg(baseline, test, corpus, corpus_vectors=corpus_vectors, cache=cache) for test in tests]
    queries = sorted({p.query for p in pairs if p.from_faq}) if config.hard_negatives else []
    query_vectors = dict(zip(queries, encode(baseline, queries, cache=cache), strict=True))
    target_vectors = dict(zip(corpus, corpus_vectors, strict=True))
    del baseline
    results, fold_weights = [], []
    for number, (held_out, test) in enumerate(zip(folds, tests, strict=True)):
        train = [p for p in pairs if p.item not in held_out]
        train = with_hard_negatives(train, target_vectors, query_vectors, config)
        span = (8 + 38 * number, 8 + 38 * (number + 1))
        result, model = fold_measure(current, number, train, test, corpus, config, progress, span, before[number],
                                     cache=cache)
        results.append(result)
        if souped(config):
            fold_weights.append({name: value.detach().clone() for name, value in model.state_dict().items()})
        del model
    gain = sum(r.gain for r in results) / len(results)
    figures = ", ".join(f"fold {r.fold + 1}: {r.before:.3f} → {r.after:.3f}" for r in results)
    if gain < config.min_gain:
        return TuningOutcome(tuple(results), gain, False,
                             f"Held-out nDCG@10 gained {gain:+.3f} ({figures}); {config.min_gain:.2f} is needed.")
    if not adopt:
        return TuningOutcome(tuple(results), gain, False, f"Measured only: held-out nDCG@10 {gain:+.3f} ({figures}).")
    model = final_model(current, with_hard_negatives(pairs, target_vectors, query_vectors, config), config,
                        fold_weights, progress, cache=cache)
    del cache
    name = artifact_save(model, knowledge_base=knowledge_base, parent=current, config=config,
                         figures={"gain": gain, "pairs": len(pairs)})
    progress("re-embedding into a new index version", 92, force=True, tuned_model=name)
    version = model_adopt(knowledge_base=knowledge_base, name=name, progress=lambda done, total: progress(
        "re-embedding into a new index version", 92 + 7 * done / max(total, 1)))
    if version.status == IndexVersion.Status.HELD:  # the regression gate (kb.regression_gate) kept it back
        return TuningOutcome(tuple(results), gain, False,
                             f"Held-out nDCG@10 gained {gain:+.3f} ({figures}), but the regression gate held index "
                             f"v{version.number} built with it: {version.gate.get('reason', '')} — "
                             "'activate anyway' on this page switches to it.", tuned_model=name)
    return TuningOutcome(tuple(results), gain, True,
                         f"Adopted: held-out nDCG@10 gained {gain:+.3f} ({figures}).", tuned_model=name)


def model_adopt(*, knowledge_base: KnowledgeBase, name: str, progress=None) -> IndexVersion:
    """Switch the base to the named model through a new index version (see kb.indexing); the version, active
    or held by the regression gate. Raises if the build fails (the old version and model keep serving)."""
    version = index_build(knowledge_base_id=knowledge_base.pk, embedding_model=name, on_progress=progress)
    knowledge_base.refresh_from_db()
    if version.status != IndexVersion.Status.HELD and knowledge_base.embedding_model != name:
        raise RuntimeError(f"The index version built with {name} was not activated ({version.status}).")
    return version


# ---------------------------------------------------------------------------- the base's own pairs


def training_pairs(kb_id: int, config: TuningConfig) -> list[Pair]:
    """The base's labelled pairs (deduplicated): FAQ phrasings → answer and source text, alternatives →
    question, titles and headings → section text. A document that is an FAQ entry's source is that
    entry's item, so its text never lands in one fold and its question in the other."""
    pairs: list[Pair] = []
    source_item: dict[int, str] = {}
    held_out = gate_held_out(kb_id)
    for entry in FaqEntry.objects.filter(knowledge_base_id=kb_id).exclude(pk__in=held_out).order_by("id"):
        item = f"faq:{entry.pk}"
        targets = [entry.answer]
        if entry.source_document_id is not None:
            source_item.setdefault(entry.source_document_id, item)
            source = document_text(entry.source_document_id)
            if source:
                targets.append(source)
        for phrasing in entry.phrasings:
            pairs.extend(Pair(phrasing, target, item, True) for target in targets)
        pairs.extend(Pair(alternative, entry.question, item, False) for alternative in entry.phrasings[1:])
    excluded_documents = set(FaqEntry.objects.filter(pk__in=held_out).values_list("source_document_id", flat=True))
    pairs.extend(section_pairs(kb_id, source_item, config.max_section_chunks, exclude=excluded_documents))
    return deduplicated(pairs)


def gate_held_out(kb_id: int) -> set[int]:
    """Ids of the FAQ entries the regression gate evaluates every build on (never trained on)."""
    entries = FaqEntry.objects.filter(knowledge_base_id=kb_id, source_document__isnull=False,
                                      source_document__chunk_count__gt=0).values_list("id", flat=True)
    return {entry_id for entry_id in entries if entry_id % HELD_OUT_EVERY == 0}


def document_text(document_id: int, limit: int = 3) -> str:
    """The first chunks of a document (training cuts texts at max_seq_length tokens anyway)."""
    texts = Chunk.objects.filter(document_id=document_id).order_by("ordinal").values_list("text", flat=True)[:limit]
    return "\n".join(texts).strip()


def section_pairs(kb_id: int, source_item: dict[int, str], per_section: int, *, exclude: set[int]) -> list[Pair]:
    """Title / heading → the first chunks of each section of the base's indexed documents (but ``exclude``)."""
    pairs, taken = [], {}
    chunks = (Chunk.objects.filter(document__knowledge_base_id=kb_id, document__status__in=INDEXED_STATUSES)
              .exclude(document_id__in=exclude).order_by("document_id", "ordinal").values_list("document_id", "document__title", "heading_path", "text"))
    for document_id, title, heading_path, text in chunks.iterator(chunk_size=2000):
        key = (document_id, heading_path)
        taken[key] = taken.get(key, 0) + 1
        if taken[key] > per_section or not text:
            continue
        item = source_item.get(document_id, f"section:{document_id}:{heading_path}")
        headings = heading_path.split(" > ") if heading_path else []
        queries = [headings[-1]] if headings else []
        if taken[key] == 1 and len(headings) > 1:
            queries.append(": ".join(headings))  # "Installation: Upgrading" names the section fully
        if title and (document_id, "") not in taken:  # the title → the document's opening text, once
            taken[(document_id, "")] = per_section + 1
            queries.append(title)
        pairs.extend(Pair(query, text, item, False) for query in queries)
    return pairs


def deduplicated(pairs: Sequence[Pair]) -> list[Pair]:
    seen, out = set(), []
    for pair in pairs:
        key = (" ".join(pair.query.split()).lower(), " ".join(pair.target.split()))
        if key[0] and key[1] and key[0] != key[1].lower() and key not in seen:
            seen.add(key)
            out.append(pair)
    return out


def fold_split(items: Sequence[str], seed: int) -> tuple[set[str], set[str]]:
    """Two folds of items (a seeded shuffle, alternately assigned): each item's pairs stay together."""
    order = list(items)
    random.Random(seed).shuffle(order)
    return set(order[0::2]), set(order[1::2])


def souped(config: TuningConfig) -> bool:
    """Whether the adopted model is the fold models' average (full fine-tuning with final="soup")."""
    if config.final not in ("soup", "retrain"):
        raise ValueError(f"Unknown final model {config.final!r}: soup or retrain.")
    return config.final == "soup" and config.method == "full"


def final_model(current: str, pairs: list[Pair], config: TuningConfig, fold_weights: list[dict],
                progress: Callable, *, cache: StateCache | None = None):
    """The model to adopt: the fold models' average when they were kept, else one trained on all pairs."""
    if not fold_weights:
        return train_model(current, pairs, config, lambda done, total: progress(
            "training on all pairs", 85 + 7 * done / total), cache=cache)
    progress("averaging the fold models", 90, force=True)
    model = training_model(current, config)
    compute.call(model.load_state_dict, weights_average(fold_weights))
    model.eval()
    return model


def weights_average(states: list[dict]) -> dict:
    """The element-wise mean of state dicts with the same keys (integer buffers are taken from the first)."""
    first = states[0]
    return {name: (sum(state[name] for state in states) / len(states) if value.is_floating_point() else value)
            for name, value in first.items()}


def evaluation_queries(pairs: Sequence[Pair]) -> list[tuple[str, frozenset[str]]]:
    """Held-out queries and the targets that answer them: FAQ phrasings (question → answer retrieval) when the
    fold has any, else every held-out query (a base of documents only: heading → section)."""
    chosen = [p for p in pairs if p.from_faq] or list(pairs)
    relevant: dict[str, set[str]] = {}
    for pair in chosen:
        relevant.setdefault(pair.query, set()).add(pair.target)
    return [(query, frozenset(targets)) for query, targets in relevant.items()]


def with_hard_negatives(pairs: list[Pair], target_vectors: dict[str, np.ndarray],
                        query_vectors: dict[str, np.ndarray], config: TuningConfig) -> list[Pair]:
    """Each FAQ pair with a hard negative: drawn (seeded) from the ``hard_negative_depth`` targets of these pairs'
    other items closest to its query by the current model. Targets of more than one item are never negatives
    (a text two entries share answers both); other pairs are returned as they are (all of them when
    ``config.hard_negatives`` is off)."""
    if not config.hard_negatives:
        return list(pairs)
    owners: dict[str, set[str]] = {}
    for pair in pairs:
        owners.setdefault(pair.target, set()).add(pair.item)
    candidates = [text for text, items in owners.items() if len(items) == 1]
    if not candidates:
        return list(pairs)
    matrix = np.stack([target_vectors[text] for text in candidates])  # (C, D)
    rng = random.Random(config.seed)
    out = []
    for pair in pairs:
        vector = query_vectors.get(pair.query) if pair.from_faq else None
        if vector is None:
            out.append(pair)
            continue
        ranked = np.argsort(-(matrix @ vector))
        near = [candidates[i] for i in ranked[:config.hard_negative_depth + 4]
                if pair.item not in owners[candidates[i]]][:config.hard_negative_depth]
        negative = rng.choice(near) if near else ""
        out.append(replace(pair, negative=negative, negative_item=next(iter(owners[negative])) if negative else ""))
    return out


# ---------------------------------------------------------------------------- measuring


def fold_measure(current: str, number: int, train: list[Pair], test, corpus: list[str], config: TuningConfig,
                 progress: Callable, span: tuple[float, float], before: float, *, cache: StateCache | None = None):
    """Held-out nDCG@10 of a model trained on ``train`` (``before``: the current model's, both fp32), and that
    model."""
    low, high = span
    model = train_model(current, train, config, lambda done, total: progress(
        f"fold {number + 1}: training ({done}/{total} steps)", low + (high - low) * 0.85 * done / total), cache=cache)
    progress(f"fold {number + 1}: measuring the tuned model", low + (high - low) * 0.85, force=True)
    after = retrieval_ndcg(model, test, corpus, cache=cache)
    log.info("tuning fold %d: %d train pairs, %d held-out queries, nDCG@10 %.3f -> %.3f",
             number + 1, len(train), len(test), before, after)
    return FoldResult(number, len(train), len(test), round(before, 4), round(after, 4)), model


def retrieval_ndcg(model, queries, corpus: list[str], *, corpus_vectors: np.ndarray | None = None,
                   cache: StateCache | None = None) -> float:
    """Mean nDCG@10 (binary relevance) of each query's targets among every target of the base."""
    if not queries:
        return 0.0
    targets = encode(model, corpus, cache=cache) if corpus_vectors is None else corpus_vectors  # (C, D)
    vectors = encode(model, [query for query, _ in queries], cache=cache)  # (Q, D)
    position = {text: i for i, text in enumerate(corpus)}
    top = np.argsort(-(vectors @ targets.T), axis=1)[:, :DEPTH]  # (Q, 10)
    total = 0.0
    for row, (_, relevant) in zip(top, queries, strict=True):
        wanted = {position[text] for text in relevant}
        dcg = sum(1 / math.log2(rank + 2) for rank, index in enumerate(row) if index in wanted)
        ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(wanted), DEPTH)))
        total += dcg / ideal
    return total / len(queries)


def encode(model, texts: list[str], batch_size: int = 64, *, cache: StateCache | None = None) -> np.ndarray:
    """Normalised float32 vectors of a training model (eval mode), in ``texts``' order, batch by batch on the
    compute thread. Texts are batched longest first, so a batch pads its texts to a length near their own (a
    base's answers run from a line to the 128-token cut: in file order every batch pads to the cut).
    ``cache``: the frozen lower layers' states of every text (only the upper layers run)."""
    order = sorted(range(len(texts)), key=lambda position: -len(texts[position]))
    out = [compute.call(encode_batch, model, [texts[position] for position in order[start:start + batch_size]],
                        cache) for start in range(0, len(order), batch_size)]
    if not out:
        return np.zeros((0, 1), dtype=np.float32)
    vectors = np.empty_like(np.concatenate(out))
    vectors[order] = np.concatenate(out)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def encode_batch(model, texts: list[str], cache: StateCache | None = None) -> np.ndarray:
    import torch  # lazy: torch loads only where a model trains (the web process imports this module)

    model.eval()
    with torch.inference_mode(), autocast(), forward_of(model, cache) as forward:
        return forward(texts)["sentence_embedding"].float().numpy()


@contextmanager
def forward_of(model, cache: StateCache | None):
    """``forward(texts)`` → the model's output features: the whole model, or its upper layers from ``cache``."""
    if cache is None:
        yield lambda texts: model(model.preprocess(list(texts)))
    else:
        with replaying(model, cache) as forward:
            yield forward


def lower_states(model, config: TuningConfig, texts: Sequence[str], batch_size: int = 64) -> StateCache | None:
    """The frozen lower layers' output for every text (``config.frozen_share`` of the layers; full fine-tuning of
    a supported encoder only — else None: everything trains), computed once, longest texts first."""
    count = frozen_count(model, config.frozen_share) if config.method == "full" else 0
    if not count:
        return None
    cache = StateCache(count, returns_tuple=False)
    unique = sorted(dict.fromkeys(texts), key=len, reverse=True)
    for start in range(0, len(unique), batch_size):
        compute.call(states_batch, model, unique[start:start + batch_size], cache)
    return cache


def states_batch(model, texts: list[str], cache: StateCache) -> None:
    with autocast():
        states_compute(model, texts, cache)


# ---------------------------------------------------------------------------- training


def autocast():
    """bf16 autocast on CPUs with native bf16 matmuls (AMX / AVX512-BF16; ~2x here), a no-op elsewhere.
    Weights, gradients and the optimizer stay fp32."""
    import torch  # lazy: torch loads only where a model trains (the web process imports this module)

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_fast_bf16())


def training_model(name: str, config: TuningConfig):
    """A private fp32 copy of the named model, cut to the training length (the cached encoders stay untouched)."""
    import torch  # lazy: torch loads only where a model trains (the web process imports this module)

    model = compute.call(sentence_transformer, model_source(name), torch.float32)
    model.max_seq_length = min(model.max_seq_length or config.max_seq_length, config.max_seq_length)
    return model


def train_model(current: str, pairs: list[Pair], config: TuningConfig, on_step: Callable[[int, int], None], *,
                cache: StateCache | None = None):
    """The current model trained on ``pairs``: full fine-tuning or LoRA, one optimizer step per compute job.
    ``cache`` (full fine-tuning): its lower layers stay frozen and every pass starts from the cached states."""
    import torch  # lazy: torch loads only where a model trains (the web process imports this module)

    model = training_model(current, config)
    torch.manual_seed(config.seed)
    if config.method == "lora":
        lora_wrap(model, config)
        cache = None
    elif config.method != "full":
        raise ValueError(f"Unknown tuning method {config.method!r}: full or lora.")
    if cache is not None:
        freeze(model, cache.count)
    parameters = [p for p in model.parameters() if p.requires_grad]
    rate = config.lora_learning_rate if config.method == "lora" else config.learning_rate
    optimizer = torch.optim.AdamW(parameters, lr=rate, weight_decay=0.01)
    batches = epoch_batches(pairs, config)
    warmup = max(1, int(len(batches) * config.warmup_share))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        (step + 1) / warmup, max(0.0, (len(batches) - step) / max(1, len(batches) - warmup))))
    start = {name: value.detach().clone() for name, value in model.state_dict().items()}
    for done, batch in enumerate(batches, start=1):
        compute.call(train_step, model, optimizer, schedule, batch, config, cache)
        on_step(done, len(batches))
    model.eval()
    compute.call(blend, model, start, config.tuned_share)
    return model


def blend(model, start: dict, share: float) -> None:
    """Each trained weight becomes ``share`` × itself + (1 − share) × its value before training. A LoRA update is
    B·A with B starting at zero: blending B alone (A kept) scales the update by ``share``."""
    import torch  # lazy: torch loads only where a model trains (the web process imports this module)

    if share >= 1.0:
        return
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.is_floating_point() and name in start and "lora_A" not in name:
                value.mul_(share).add_(start[name], alpha=1.0 - share)


def epoch_batches(pairs: list[Pair], config: TuningConfig) -> list[list[Pair]]:
    """Shuffled batches for every epoch (a trailing batch of one pair has no negatives: dropped).

    Within each window of 8 shuffled batches the pairs are grouped by target length: a random batch
    of the demo base pads its answers to ~97 tokens for a mean of 55, so this saves about a third of
    the target tokens, while each pair's negatives still come from a random window.
    """
    rng = random.Random(config.seed)
    window = config.batch_size * 8
    batches = []
    for _ in range(config.epochs):
        order = list(pairs)
        rng.shuffle(order)
        epoch = []
        for start in range(0, len(order), window):
            part = sorted(order[start:start + window], key=lambda pair: len(pair.target))
            epoch.extend(part[i:i + config.batch_size] for i in range(0, len(part), config.batch_size))
        rng.shuffle(epoch)
        batches.extend(epoch)
    return [batch for batch in batches if len(batch) > 1]


def train_step(model, optimizer, schedule, batch: list[Pair], config: TuningConfig,
               cache: StateCache | None = None) -> float:
    """One MultipleNegativesRanking step, both directions; pairs of one item or one target are not negatives."""
    import torch  # lazy: torch loads only where a model trains (the web process imports this module)
    import torch.nn.functional as F  # lazy: torch, as above

    model.train()
    # B pairs, D embedding size
    negatives = [p for p in batch if p.negative]  # N of the B pairs carry a hard negative
    with autocast(), forward_of(model, cache) as forward:
        queries = forward([p.query for p in batch])["sentence_embedding"]  # (B, D)
        targets = forward([p.target for p in batch] + [p.negative for p in negatives])["sentence_embedding"]
    queries, targets = F.normalize(queries.float(), dim=-1), F.normalize(targets.float(), dim=-1)  # (B+N, D)
    logits = queries @ targets.T * config.scale  # (B, B+N)
    items = [p.item for p in batch] + [p.negative_item for p in negatives]
    texts = [p.target for p in batch] + [p.negative for p in negatives]
    twins = torch.tensor([[i != j and (items[i] == items[j] or texts[i] == texts[j]) for j in range(len(texts))]
                          for i in range(len(batch))])  # (B, B+N) true where a non-diagonal pair is not a negative
    logits = logits.masked_fill(twins, float("-inf"))
    labels = torch.arange(len(batch))
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits[:, :len(batch)].T, labels)) / 2
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    schedule.step()
    return float(loss.detach())


def lora_wrap(model, config: TuningConfig) -> None:
    """Freeze the transformer and add LoRA adapters to its attention and feed-forward projections (peft)."""
    from peft import LoraConfig, get_peft_model  # lazy: only the LoRA method needs peft (an optional extra)

    transformer, attribute = transformer_of(model)
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.1,
                      target_modules=["query", "key", "value", "dense"])
    setattr(transformer, attribute, get_peft_model(getattr(transformer, attribute), lora))


# ---------------------------------------------------------------------------- the artifact


def artifact_save(model, *, knowledge_base: KnowledgeBase, parent: str, config: TuningConfig,
                  figures: dict) -> str:
    """Save the trained model under the data dir (content-addressed) and return its name, tuned:<slug>:<hash12>.

    Full fine-tuning saves a whole sentence-transformers model; LoRA saves the adapter and names its parent.
    """
    root = Path(settings.KEFU_DATA_DIR) / "models" / "tuned" / knowledge_base.slug
    root.mkdir(parents=True, exist_ok=True)
    temporary = root / f".tmp-{time.monotonic_ns()}"
    try:
        if config.method == "lora":
            temporary.mkdir()
            transformer, attribute = transformer_of(model)
            compute.call(getattr(transformer, attribute).save_pretrained, str(temporary / ADAPTER_DIR))
        else:
            # fp16 on disk halves the artifact (45 MB for MiniLM); it loads in the embedder's dtype like any model
            model.max_seq_length = original_max_length(parent)
            compute.call(model.half)
            compute.call(model.save, str(temporary))
        manifest = {"parent": parent, "method": config.method, "knowledge_base": knowledge_base.slug,
                    "config": asdict(config), "figures": figures, "created": timezone.now().isoformat()}
        (temporary / TUNED_MANIFEST).write_text(json.dumps(manifest, indent=1))
        digest = artifact_digest(temporary)
        final = tuned_model_dir(knowledge_base.slug, digest)
        if final.exists():
            shutil.rmtree(temporary)
        else:
            temporary.rename(final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    name = tuned_model_name(knowledge_base.slug, digest)
    model_source(name)  # it resolves
    return name


def original_max_length(name: str) -> int:
    """The max_seq_length the parent model serves with (training cut it shorter)."""
    return get_embedder(name).max_seq_length


MANIFEST_IDENTITY = ("parent", "method", "knowledge_base", "config")  # what makes two artifacts the same model


def artifact_digest(directory: Path) -> str:
    """sha256 of what an artifact is: its model files, and of its manifest only the fields that say what model it
    is — not when it was made or what it measured, so the same weights trained the same way get the same name
    (and the same folder) again instead of a copy under a new one."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        content = path.read_bytes()
        if path == directory / TUNED_MANIFEST:
            manifest = json.loads(content)
            content = json.dumps({key: manifest.get(key) for key in MANIFEST_IDENTITY}, sort_keys=True).encode()
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + content)
    return digest.hexdigest()

