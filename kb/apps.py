"""Django app configuration for ``kb``.

In embedded mode the web process runs ingestion in its own threads, so documents a stopped
process left queued or half-processed are re-enqueued when it serves its first request
(management commands never trigger this: they serve no requests).
"""

import threading

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import request_started
from django.db.models.signals import pre_delete


class KbConfig(AppConfig):
    name = "kb"
    verbose_name = "Knowledge bases"

    def ready(self) -> None:
        # lazy: kb.search_backends imports kb.models, which needs the app registry this method runs after
        # (the speller's ~20 MB word list loads only when english_words is called: in the web's warm-up)
        from kb.retrieval.spelling import english_words
        from kb.search_backends import rows_drop_with_base
        from kefu.runtime import on_warmup

        on_warmup(english_words)  # ~20 MB word list the speller reads for the first question with a Latin word
        request_started.connect(resume_on_first_request, dispatch_uid="kb-resume-on-start")
        pre_delete.connect(rows_drop_with_base, sender="kb.KnowledgeBase", dispatch_uid="kb-rows-drop-with-base")


_resumed = threading.Event()


def resume_on_first_request(**_: object) -> None:
    """Once per embedded web process: re-enqueue unfinished documents (nothing silently lost)."""
    if _resumed.is_set() or settings.KEFU_MODE != "embedded" or not settings.KEFU_KB_RESUME_ON_START:
        return
    _resumed.set()
    request_started.disconnect(dispatch_uid="kb-resume-on-start")
    from kb.recovery import documents_resume  # lazy: kb.recovery imports kb.models (app registry, as above)

    documents_resume()
