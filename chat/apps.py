"""Django app configuration for ``chat``.

When a knowledge base's index version becomes active (:data:`kb.signals.index_activated`) or its search
results change otherwise (:data:`kb.signals.retrieval_changed`: fusion tuned, glossary corrected), its answerability
model is fitted again in the background, on the ingest queue; on the latter its cached answers are dropped too (they
were built on the results as they were, under the same index version).
"""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # lazy: apps.py is imported while Django loads the apps
        from kb.signals import index_activated, retrieval_changed

        index_activated.connect(answerability_fit_enqueue, dispatch_uid="chat-answerability-fit")
        retrieval_changed.connect(answerability_fit_enqueue, dispatch_uid="chat-answerability-refit")
        retrieval_changed.connect(cached_answers_forget, dispatch_uid="chat-cache-forget")
        from chat.answerability_gate import answerability_accuracy  # lazy: as above
        from kb.regression_gate import GATE_CHECKS  # lazy: as above

        if answerability_accuracy not in GATE_CHECKS:  # the regression gate compares answerability too
            GATE_CHECKS.append(answerability_accuracy)
        from chat.lookups import connect_signals  # lazy: as above

        connect_signals()  # the web's remembered keys and profiles are forgotten when they change
        from chat.pipeline.answerability import warm_references  # lazy: as above
        from kefu.runtime import on_warmup  # lazy: as above

        on_warmup(warm_references)  # the first scored question would embed ~460 shipped questions


def answerability_fit_enqueue(*, knowledge_base_id: int, index_version_id: int, **_: object) -> None:
    """Queue the fit of the active version (sent after the change committed)."""
    from chat.pipeline.answerability import FIT_QUEUE  # lazy: as above
    from chat.tasks import answerability_fit  # lazy: as above (the tasks reach the models)
    from kefu.background import enqueue  # lazy: as above

    enqueue(answerability_fit, knowledge_base_id, index_version_id, queue=FIT_QUEUE)


def cached_answers_forget(*, knowledge_base_id: int, **_: object) -> None:
    """Drop the base's cached answers (its results changed under the same index version)."""
    from chat.pipeline.cache import answer_cache_forget  # lazy: as above

    answer_cache_forget(kb_id=knowledge_base_id)
