"""Something built from a base's texts once per (knowledge base, index version) and kept per process.

The speller (:mod:`kb.retrieval.spelling`) and the glossary (:mod:`kb.retrieval.glossary`) read every text a
base answers from on first use after an index switch; a burst of questions right after the switch builds it
once, the others wait for it. The glossary as staff corrected it is kept the same way, per (knowledge base,
index version, glossary revision), built from the mined glossary and the corrections.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")
Key = tuple[int, ...]  # (knowledge base id, index version id[, revision])


class PerVersion(Generic[T]):
    """At most ``kept`` values built by ``build(source)`` (a base's texts, by default), the oldest dropped first."""

    def __init__(self, build: Callable[[Iterable[str]], T] | Callable[[object], T], *, kept: int = 8):
        self.build = build
        self.kept = kept
        self._values: dict[Key, T] = {}
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()  # one built at a time: the others wait for it rather than build it too

    def get(self, key: Key, texts: Callable[[], object]) -> T:
        """The value of ``key``, built from ``texts()`` on first use in this process."""
        found = self._values.get(key)
        if found is not None:
            return found
        with self._build_lock:
            found = self._values.get(key)
            if found is not None:
                return found
            value = self.build(texts())
            with self._lock:
                if len(self._values) >= self.kept:
                    self._values.pop(next(iter(self._values)))
                self._values[key] = value
        return value

    def clear(self) -> None:
        """Drop every base's value (tests; a process whose bases changed under it)."""
        with self._lock:
            self._values.clear()
