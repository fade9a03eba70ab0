"""The search entry point other apps call: ``kb.search.hybrid(kb, query, k, *, query_vector=None) -> list[Hit]``.

The implementation lives in :mod:`kb.retrieval.search`; this module is the stable name.
"""

from kb.retrieval.search import Hit, SearchResult, hybrid, search

__all__ = ["Hit", "SearchResult", "hybrid", "search"]
