"""Celery glue for the chat app: ids in, plain functions called.

``chat.answerability_fit`` runs on the ``ingest`` queue (``enqueue(..., queue=FIT_QUEUE)``: only ``kb.*`` routes
there by name), beside the index builds whose activation triggers it, never on a request thread.
"""

from __future__ import annotations

import logging

from chat.answerability_fit import AnswerabilityFitError
from chat.answerability_fit import answerability_fit as fit
from kb.search import SearchBackendUnavailable
from kefu.celery import app

log = logging.getLogger(__name__)


FIT_RETRY_S = 60  # a search backend (Milvus) that is down: try the fit again this much later ...
FIT_RETRIES = 30  # ... this many times (half an hour), then leave it to the next index activation


@app.task(name="chat.answerability_fit", bind=True, acks_late=True, ignore_result=True,
          time_limit=1800, soft_time_limit=1700)
def answerability_fit(self, knowledge_base_id: int, index_version_id: int | None = None) -> None:
    try:
        fit(knowledge_base_id=knowledge_base_id, index_version_id=index_version_id)
    except AnswerabilityFitError as exc:  # a base without FAQ questions: its replies keep the rules
        log.info("answerability kb-%s not fitted: %s", knowledge_base_id, exc)
    except SearchBackendUnavailable as exc:  # the base's replies keep the rules until a fit succeeds
        log.warning("answerability kb-%s not fitted, its search backend is down: %s", knowledge_base_id, exc)
        if not self.request.is_eager:  # a Celery worker: again later (a thread of an embedded process: not)
            raise self.retry(exc=exc, countdown=FIT_RETRY_S, max_retries=FIT_RETRIES) from exc
