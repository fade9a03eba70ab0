"""Celery glue for ingestion: ids in, plain functions called.

The queue is chosen by name: ``kb.*`` routes to ``ingest`` (CELERY_TASK_ROUTES), so the names matter.
"""

from __future__ import annotations

from datetime import timedelta

from kb.indexing import index_build
from kb.ingestion import document_ingest
from kb.model_switch import model_switch_run
from kb.recovery import documents_resume
from kb.tuning import tuning_run
from kefu.celery import app


@app.task(name="kb.ingest_document", acks_late=True, ignore_result=True,
          time_limit=3600, soft_time_limit=3500)
def ingest_document(document_id: int) -> None:
    document_ingest(document_id=document_id)


@app.task(name="kb.rebuild_index", acks_late=True, ignore_result=True,
          time_limit=1800, soft_time_limit=1700)
def rebuild_index(knowledge_base_id: int, gate: bool = True, embedding_model: str = "") -> None:
    index_build(knowledge_base_id=knowledge_base_id, gate=gate, embedding_model=embedding_model)


@app.task(name="kb.reclaim_stale_documents", acks_late=True, ignore_result=True, time_limit=300)
def reclaim_stale_documents(stale_minutes: int = 30) -> None:
    """Re-enqueue documents whose ingestion stopped moving (a worker killed mid-way); schedule it with beat."""
    documents_resume(stale_after=timedelta(minutes=stale_minutes))


@app.task(name="kb.tune_embedder", acks_late=True, ignore_result=True,
          time_limit=3600, soft_time_limit=3500)
def tune_embedder(run_id: int) -> None:
    """Train a base's embedder on its own pairs and adopt it if it measurably helps (kb.tuning)."""
    tuning_run(run_id=run_id)


@app.task(name="kb.switch_embedder", acks_late=True, ignore_result=True,
          time_limit=3600, soft_time_limit=3500)
def switch_embedder(run_id: int) -> None:
    """Re-embed a base with another model into a new index version and swap to it (kb.model_switch)."""
    model_switch_run(run_id=run_id)
