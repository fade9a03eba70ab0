"""Celery glue for the chat app: ids in, plain functions called.

``chat.answerability_fit`` runs on the ``ingest`` queue (``enqueue(..., queue=FIT_QUEUE)``: only ``kb.*`` routes
there by name), beside the index builds whose activation triggers it, never on a request thread.
"""

from __future__ import annotations

import logging

from chat.answerability_fit import AnswerabilityFitError
from chat.answerability_fit import answerability_fit as fit
from kefu.celery import app

log = logging.getLogger(__name__)

FIT_QUEUE = "ingest"


@app.task(name="chat.answerability_fit", acks_late=True, ignore_result=True,
          time_limit=1800, soft_time_limit=1700)
def answerability_fit(knowledge_base_id: int, index_version_id: int | None = None) -> None:
    try:
        fit(knowledge_base_id=knowledge_base_id, index_version_id=index_version_id)
    except AnswerabilityFitError as exc:  # a base without FAQ questions: its replies keep the rules
        log.info("answerability kb-%s not fitted: %s", knowledge_base_id, exc)
