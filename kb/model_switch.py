"""Switching a knowledge base to another embedding model: the KB page's form and ``manage.py kb_set_model``.

A switch is a background job on the ingest queue (the embedded ingest pool), recorded like a tuning run
(``TuningRun`` with method ``switch``; ``base_model`` the model it leaves, ``tuned_model`` the model it
switches to): its stage, % and heartbeat drive the KB page's progress row, a silent one is reclaimed as
interrupted, and one such job per base runs at a time — a tuning and a switch both end in a new index built
with another model. The job re-embeds every chunk and FAQ phrasing with the new model into a new index
version (:func:`kb.tuning.model_adopt` → :func:`kb.indexing.index_build`): the old version, its model and its
vectors serve until the activating commit; a version the regression gate holds back waits for the page's
"activate anyway".

Budget: the re-embedding dominates (one encoder pass over every chunk and FAQ phrasing, in
``KEFU_KB_EMBED_BATCH`` batches); memory: the new vectors of the whole base, float32, until the swap.
"""

from __future__ import annotations

import logging
import time

from django.db import transaction
from django.utils import timezone

from kb.embedding import check_model_name, knowledge_base_model
from kb.models import IndexVersion, KnowledgeBase, TuningRun
from kb.tuning import STALE_AFTER, RunProgress, TuningRejected, model_adopt, tuning_runs_interrupted
from kefu import background
from kefu.config import ConfigError

log = logging.getLogger(__name__)

SWITCH = "switch"  # TuningRun.method of a model switch


class SwitchRejected(TuningRejected):
    """A switch that cannot start: an unknown model, the model the base already has, or a job already running."""


class SwitchBusy(SwitchRejected):
    """A switch that cannot start now: a tuning run or another switch of the base is queued or running."""


def model_switch_start(*, knowledge_base: KnowledgeBase, name: str, enqueue: bool = True) -> TuningRun:
    """Record a queued switch of the base to the named model and enqueue it (on commit); nothing is stored
    when the name does not resolve here, is the base's model already, or another job of the base is active."""
    try:
        check_model_name(name)
    except ConfigError as exc:
        raise SwitchRejected(str(exc)) from exc
    tuning_runs_interrupted(older_than=STALE_AFTER)
    with transaction.atomic():
        kb = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
        current = knowledge_base_model(kb)
        if name == current:
            raise SwitchRejected(f"The base already embeds with {name}.")
        if TuningRun.objects.filter(knowledge_base=kb, status__in=TuningRun.ACTIVE_STATUSES).exists():
            raise SwitchBusy("A tuning run or model switch of this knowledge base is already queued or running.")
        run = TuningRun.objects.create(knowledge_base=kb, method=SWITCH, base_model=current, tuned_model=name,
                                       stage=f"queued: switch to {name}"[:100])
        if enqueue:
            transaction.on_commit(lambda: model_switch_enqueue(run.pk))
    return run


def model_switch_enqueue(run_id: int) -> None:
    background.enqueue("kb.switch_embedder", run_id)


def model_switch_run(*, run_id: int) -> TuningRun:
    """Run one queued switch to its end (the plain function the task wraps); never raises for the job's own
    failures — the run ends ``failed`` with the reason, and the old model and index keep serving."""
    claimed = TuningRun.objects.filter(pk=run_id, method=SWITCH, status=TuningRun.Status.QUEUED).update(
        status=TuningRun.Status.RUNNING, stage="re-embedding", progress=1, updated_at=timezone.now())
    run = TuningRun.objects.select_related("knowledge_base").get(pk=run_id)
    if not claimed:
        return run
    started = time.perf_counter()
    try:
        version = model_adopt(knowledge_base=run.knowledge_base, name=run.tuned_model,
                              progress=switch_progress(run_id, run.tuned_model))
    except Exception as exc:
        log.exception("model switch %s failed", run_id)
        TuningRun.objects.filter(pk=run_id).update(
            status=TuningRun.Status.FAILED, stage="failed", seconds=round(time.perf_counter() - started, 1),
            error_message=f"{type(exc).__name__}: {exc}"[:2000], updated_at=timezone.now())
    else:
        held = version.status == IndexVersion.Status.HELD
        TuningRun.objects.filter(pk=run_id).update(
            status=TuningRun.Status.DONE, stage="done", progress=100, seconds=round(time.perf_counter() - started, 1),
            adopted=not held, reason=switch_reason(run, version), updated_at=timezone.now())
    run.refresh_from_db()
    return run


def switch_progress(run_id: int, name: str):
    """``on_progress(done, total)`` of the re-embedding, saved as the run's stage and % (its heartbeat too)."""
    save = RunProgress(run_id)

    def progress(done: int, total: int) -> None:
        if done >= total:
            save("building the new index version", 97, force=True)
        else:
            save(f"re-embedding with {name} ({done}/{total})", 2 + 95 * done / max(total, 1))

    return progress


def switch_reason(run: TuningRun, version: IndexVersion) -> str:
    if version.status == IndexVersion.Status.HELD:
        return (f"Index v{version.number} built with {run.tuned_model}, but the regression gate held it: "
                f"{version.gate.get('reason', '')} — 'activate anyway' on this page switches to it.")
    return f"Switched from {run.base_model} to {run.tuned_model}: index v{version.number} built with it."
