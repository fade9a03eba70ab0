"""Where a knowledge base's index versions live and are searched: in-process files, or Milvus.

A backend writes one index version's rows (``write``), hands back a handle searches use
(``load``), deletes rows of versions no longer kept (``prune``) and says whether it answers
(``status``). Each :class:`kb.models.IndexVersion` records its backend, so a base is searched
where its active version lives while ``KEFU_SEARCH_BACKEND`` decides where new builds go;
``manage.py kb_reindex --backend milvus`` moves a base with one ordinary (atomic) build.

Other apps do not import this package: they call :mod:`kb.search`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import transaction

from kb.models import IndexVersion
from kb.search_backends.metrics import BACKEND_ERRORS, BACKEND_SECONDS

LOCAL = "local"
MILVUS = "milvus"
BACKENDS = (LOCAL, MILVUS)

_milvus: dict[tuple, SearchBackend] = {}
_milvus_lock = threading.Lock()


class SearchBackendUnavailable(Exception):  # noqa: N818 - reads as a state, like Django's ObjectDoesNotExist
    """The search backend did not answer (down, unreachable, timed out): the chat API answers 503."""


class SearchBackendConfigError(Exception):
    """KEFU_SEARCH_BACKEND / KEFU_MILVUS_* name something Kefu cannot use."""


@dataclass(frozen=True)
class BackendStatus:
    name: str
    ok: bool
    detail: str


class SearchBackend(Protocol):
    name: str

    def write(self, kb_id: int, version, *, model: str, fresh=None) -> dict: ...

    def load(self, kb_id: int, version_id: int, number: int, embedding_model: str): ...

    def prune(self, kb_id: int, keep: set[int]) -> None: ...

    def status(self) -> BackendStatus: ...


def configured_name() -> str:
    name = (settings.KEFU_SEARCH_BACKEND or LOCAL).strip().lower()
    if name not in BACKENDS:
        raise SearchBackendConfigError(f"KEFU_SEARCH_BACKEND={name!r} is not one of {', '.join(BACKENDS)}")
    if name == MILVUS and not settings.KEFU_MILVUS_URI:
        raise SearchBackendConfigError("KEFU_SEARCH_BACKEND=milvus needs KEFU_MILVUS_URI "
                                       "(a file path for Milvus Lite, or http://host:19530)")
    if name == MILVUS and settings.KEFU_MODE == "service" and lite_file(settings.KEFU_MILVUS_URI):
        raise SearchBackendConfigError(
            f"KEFU_MILVUS_URI={settings.KEFU_MILVUS_URI} is a Milvus Lite file, which only one process may open; "
            "in service mode serve it (python -m milvus_lite server --data-dir DIR --port 19530) or run Milvus, "
            "and give its http:// address")
    return name


def lite_file(uri: str) -> bool:
    from kb.search_backends.milvus import is_lite  # lazy: kb.search_backends.milvus imports this package

    return is_lite(uri)


def backend_named(name: str) -> SearchBackend:
    """The process's backend of that name (one Milvus client per process and URI)."""
    if name == MILVUS:
        return milvus_backend(settings.KEFU_MILVUS_URI, settings.KEFU_MILVUS_TOKEN, settings.KEFU_MILVUS_DB,
                              settings.KEFU_MILVUS_TIMEOUT_S)
    if name in ("", LOCAL):
        # lazy: kb.search_backends.local imports this package
        from kb.search_backends.local import LocalBackend

        return LocalBackend()
    raise SearchBackendConfigError(f"unknown search backend {name!r}")


def configured_backend() -> SearchBackend:
    """Where new index versions are built (``KEFU_SEARCH_BACKEND``)."""
    return backend_named(configured_name())


def milvus_backend(uri: str, token: str, db: str, timeout_s: float) -> SearchBackend:
    key = (uri, token, db, timeout_s)
    with _milvus_lock:
        if key not in _milvus:
            # lazy: kb.search_backends.milvus imports this package
            from kb.search_backends.milvus import MilvusBackend

            _milvus[key] = MilvusBackend(uri=uri, token=token, db=db, timeout_s=timeout_s)
        return _milvus[key]


def forget_backends() -> None:
    """Close and drop the process's Milvus clients (tests that point KEFU_MILVUS_URI elsewhere)."""
    with _milvus_lock:
        for backend in _milvus.values():
            backend.close()
        _milvus.clear()


def rows_drop_with_base(sender, instance, **kwargs) -> None:
    """``pre_delete`` of a KnowledgeBase: once the deletion commits, its rows leave every search server
    that held a version of it (local files are per process and go with KEFU_DATA_DIR)."""
    remote = set(IndexVersion.objects.filter(knowledge_base_id=instance.pk).exclude(backend=LOCAL)
                 .values_list("backend", flat=True))
    for name in remote:
        transaction.on_commit(lambda name=name, kb_id=instance.pk: drop_quietly(name, kb_id))


def drop_quietly(name: str, kb_id: int) -> None:
    try:
        backend_named(name).prune(kb_id, set())
    except (SearchBackendUnavailable, SearchBackendConfigError) as exc:
        logging.getLogger(__name__).warning("rows of deleted knowledge base %s left in %s: %s", kb_id, name, exc)


@contextmanager
def observed(backend: str, operation: str) -> Iterator[None]:
    """Time one backend call into the Prometheus histogram; count it as an error when it raises."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        BACKEND_ERRORS.labels(backend=backend, operation=operation).inc()
        raise
    finally:
        BACKEND_SECONDS.labels(backend=backend, operation=operation).observe(time.perf_counter() - started)
