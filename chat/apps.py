"""Django app configuration for ``chat``.

When a knowledge base's index version becomes active (:data:`kb.signals.index_activated`), its
answerability model is fitted again in the background, on the ingest queue.
"""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from kb.signals import index_activated

        index_activated.connect(answerability_fit_enqueue, dispatch_uid="chat-answerability-fit")


def answerability_fit_enqueue(*, knowledge_base_id: int, index_version_id: int, **_: object) -> None:
    """Queue the fit of the newly active version (sent after the switch committed)."""
    from chat.tasks import FIT_QUEUE, answerability_fit
    from kefu.background import enqueue

    enqueue(answerability_fit, knowledge_base_id, index_version_id, queue=FIT_QUEUE)
