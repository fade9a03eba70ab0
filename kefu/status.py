"""What a component reports about itself: usable or not, and why.

The apps' status functions (``kb.embedding.embedder_status``, ``inference.selectors.generator_status``)
return it, and the start-up checks (:mod:`kefu.preflight`) and ``/readyz`` (:mod:`kefu.health`) collect
them. It lives at the base so the apps need not import the checks that import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ComponentStatus:
    """Whether one component is usable, with a short human-readable detail."""

    name: str
    ok: bool
    detail: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "detail": self.detail, **self.extra}
