"""Signals the kb app sends, so apps above it can react without kb importing them.

``index_activated``: a knowledge base's active index version switched to a newly built one. Sent
after the switch commits, with ``knowledge_base_id`` and ``index_version_id``. The chat app fits the
base's answerability model on it (in the background, on the ingest queue).
"""

from django.dispatch import Signal

index_activated = Signal()

# ``retrieval_changed``: the active version's search results changed without a new version (the base's
# fusion settings were tuned, or staff corrected its glossary). Same arguments; the chat app fits the
# answerability model again on it and drops the base's cached answers.
retrieval_changed = Signal()
