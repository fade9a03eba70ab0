"""Model functions of the transformers backend, in the gpt-fast style.

Small functions the batching engine (:mod:`inference.engine`) chains together:
:func:`encode_chat` (chat template → ids), :func:`prefill` (waiting prompts, left-padded,
in one pass → their KV cache and first-token logits), :func:`merge` (they join the running batch),
:func:`decode_step` (one token for every row), :func:`sample`, and :func:`evict` (drop
finished rows, trim padding).

The running batch is a left-padded ``DynamicCache``: every row's keys/values end at the
same column, the attention mask marks each row's padding, and each row carries its own
position id. Newly admitted sequences are prefilled together and left-padded to the
batch's length (or the batch is padded to theirs) before they join; nothing else moves.
On the 2-core CPU with SmolLM2-135M, plain ``generate`` on a left-padded batch of 8
was measured at ~37 tok/s and transformers' own continuous batching
(``generate_batch``) at ~21 tok/s, so the engine keeps the padded-batch layout and
adds joining and eviction itself; side by side, this decode loop matched ``generate``.

torch and transformers are imported inside the functions: only a process that
generates pays for them (the web process must start fast).

Shapes: B rows in the batch, L cache length (padded), T prompt tokens, V vocabulary,
H key/value heads, D head dim.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from inference.catalog import resolve_model
from inference.config import EngineConfig
from inference.loader import load_generator
from inference.moe import router_modules
from inference.params import SamplingParams

log = logging.getLogger(__name__)


@dataclass
class DecodeBatch:
    """The rows decoding together. Mutable: the engine's loop owns it and nobody else touches it."""

    cache: object  # transformers DynamicCache; per layer keys/values (B, H, L, D)
    attention_mask: object  # B, L — 1 for real tokens, 0 for left padding
    positions: object  # B — position id of the token each row feeds next
    last_tokens: object  # B — the token each row feeds next
    padded: bool = False  # some row has left padding (else the mask is all ones and can be left out)

    @property
    def size(self) -> int:
        return int(self.attention_mask.shape[0])

    @property
    def length(self) -> int:
        return int(self.attention_mask.shape[1])


def load_model(config: EngineConfig, *, models_dir):
    """Load the configured model once (and quantize it when asked): a LoadedModel."""
    import torch  # lazy: the web process imports this module and must start without torch

    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    # fbgemm's quantized Linear computes in fp32: an explicit CPU quantization loads fp32 weights under dtype auto
    dtype = "float32" if config.dtype == "auto" and config.quantization in CPU_QUANTIZATION else config.dtype
    loaded = load_generator(resolve_model(config.model, config.backend), models_dir=models_dir,
                            device=config.device, dtype=dtype)
    method = resolve_quantization(config.quantization, loaded.device, loaded.dtype,
                                  moe=bool(router_modules(loaded.model)))
    if method not in ("", "none"):
        loaded.model = release_weights_file(quantize(loaded.model, method, loaded.device, inplace=True))
        loaded.dtype = f"{loaded.dtype}+{method}"
    return loaded


def release_weights_file(model):
    """Copy the tensors left unquantized (embeddings, norms) out of the memory-mapped safetensors file.

    Quantizing reads every fp32 weight, so the whole file ends up mapped and counted in RSS (measured:
    +660 MB of file pages on top of the new fp16 weights, 1.4 GB in all) for as long as one tensor still
    points into it; with those few tensors copied the mapping goes away.
    """
    for tensor in [*model.parameters(), *model.buffers()]:
        tensor.data = tensor.data.clone()
    return model


# CPU weight quantization (torch's fbgemm dynamic-quantized Linear), KEFU_QUANTIZATION → torch qconfig name.
# Measured on the 2-core AVX2 CPU with SmolLM2-135M (BENCHMARKS.md, bench/inference_quant.py):
# - "fp16-weight": weights stored as fp16, fp32 activations and accumulation; decode ~2× faster than fp32,
#   prefill unchanged, answers (greedy) as fp32's.
# - "int8" / "int8-dynamic": int8 weights (one scale per tensor), activations quantized per batch;
#   fastest prefill, but changes most greedy answers of this small model;
# - "int8-channel": the same with one scale per output channel.
CPU_QUANTIZATION = ("fp16-weight", "int8", "int8-dynamic", "int8-channel")


def quantize(model, method: str, device: str, *, inplace: bool = False):
    """Weight quantization after loading, on a CPU (a copy unless ``inplace``); see ``CPU_QUANTIZATION``."""
    import torch  # lazy: the web process imports this module and must start without torch
    from torch.ao.quantization import (  # lazy: torch, as above
        float16_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    if method not in CPU_QUANTIZATION or device != "cpu":
        raise ValueError(f"KEFU_QUANTIZATION={method!r} is not supported on {device} "
                         f"(use 'none', or on a CPU one of {', '.join(CPU_QUANTIZATION)})")
    weight_dtype = next(model.parameters()).dtype
    if weight_dtype != torch.float32:
        raise ValueError(f"KEFU_QUANTIZATION={method!r} needs float32 weights, not {weight_dtype} "
                         "(set KEFU_DTYPE=float32 or auto, or KEFU_QUANTIZATION=none)")
    # In place at load time, so the fp32 weights are freed as they are replaced (no second copy at peak RSS).
    # (torch.ao.quantization is deprecated in favour of torchao, which is not installed here.)
    qconfig = {"fp16-weight": float16_dynamic_qconfig, "int8-channel": per_channel_dynamic_qconfig}.get(method)
    spec = {torch.nn.Linear: qconfig} if qconfig else {torch.nn.Linear}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=inplace)


def resolve_quantization(method: str, device: str, dtype: str, *, moe: bool = False) -> str:
    """``auto``: fp16 weights for a dense fp32 model on a CPU (same answers, faster decode), else none.

    MoE models keep their format under ``auto``: the expert counters hook their routers' ``nn.Linear``.
    """
    if method != "auto":
        return method
    return "fp16-weight" if device == "cpu" and dtype.endswith("float32") and not moe else "none"


def encode_chat(tokenizer, messages: Sequence[dict], *, add_generation_prompt: bool = True) -> list[int]:
    """The model's chat template applied to ``messages``, ending with the assistant's turn: T ids."""
    encoded = tokenizer.apply_chat_template(list(messages), add_generation_prompt=add_generation_prompt,
                                            tokenize=True)
    if hasattr(encoded, "keys"):  # transformers 5 returns a BatchEncoding
        encoded = encoded["input_ids"]
    if encoded and isinstance(encoded[0], list):
        encoded = encoded[0]
    return [int(token) for token in encoded]


PREFIX_MIN_TOKENS = 16  # a shorter shared prefix is not worth a cache entry


def system_prefix_length(tokenizer, messages: Sequence[dict], prompt_ids: list[int]) -> int:
    """How many leading tokens of ``prompt_ids`` are the leading system message(s) alone — the part every
    chat of a knowledge base shares, whose keys/values the engine caches — or 0 when there is none.

    The template's rendering of the system message(s) must be a strict token prefix of the whole prompt
    (templates that render a system message differently alone, or refuse to, get 0).
    """
    leading = 0
    while leading < len(messages) and messages[leading].get("role") == "system":
        leading += 1
    if leading == 0 or leading == len(messages):
        return 0
    try:
        rendered = encode_chat(tokenizer, messages[:leading], add_generation_prompt=False)
    except Exception:  # noqa: BLE001 - a template that needs a user turn: no prefix
        return 0
    length = len(rendered)
    if length < PREFIX_MIN_TOKENS or length >= len(prompt_ids) or rendered != prompt_ids[:length]:
        return 0
    return length


def cache_snapshot(batch: DecodeBatch) -> tuple:
    """A copy of a one-row batch's keys/values, per layer ((1, H, L, D), (1, H, L, D)): a prefix cache entry."""
    return tuple((layer.keys.clone(), layer.values.clone()) for layer in batch.cache.layers)


def batch_from_snapshot(snapshot: tuple, device: str) -> DecodeBatch:
    """A one-row batch whose cache starts as a copy of ``snapshot``; prefill_chunk continues after it."""
    import torch  # lazy: the web process imports this module and must start without torch

    # lazy: slab_cache imports torch and transformers at the top
    from inference.backends.slab_cache import slab_cache

    cache = slab_cache()
    for index, (keys, values) in enumerate(snapshot):
        cache.update(keys, values, index)  # copied into the new layer's slab: the entry stays as it was
    length = int(snapshot[0][0].shape[-2])
    return DecodeBatch(cache, torch.ones(1, length, dtype=torch.long, device=device),
                       torch.tensor([length], device=device), torch.zeros(1, dtype=torch.long, device=device))


def prompt_opens_reasoning(tokenizer, prompt_ids: list[int]) -> bool:
    """True when the chat template already opened a ``<think>`` block (the model starts reasoning)."""
    tail = tokenizer.decode(prompt_ids[-8:], skip_special_tokens=False)
    return tail.rstrip().endswith("<think>")


def eos_token_ids(model, tokenizer) -> frozenset[int]:
    """Every id that ends a generation: the generation config's EOS ids and the tokenizer's."""
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(item) for item in value)
    return frozenset(ids)


def prefill(model, prompts: list[list[int]], device: str, pad_token_id: int = 0):
    """Run P prompts in one forward pass, left-padded to the longest.

    Returns (logits of each prompt's last position (P, V), a DecodeBatch of the P rows whose
    ``last_tokens`` the caller sets from those logits).
    """
    import torch  # lazy: the web process imports this module and must start without torch

    # lazy: slab_cache imports torch and transformers at the top
    from inference.backends.slab_cache import slab_cache

    lengths = [len(prompt) for prompt in prompts]
    width = max(lengths)
    input_ids = torch.tensor([[pad_token_id] * (width - len(prompt)) + list(prompt) for prompt in prompts],
                             device=device)  # P, T
    mask = torch.tensor([[0] * (width - length) + [1] * length for length in lengths], device=device)  # P, T
    padded = min(lengths) != width
    position_ids = (mask.cumsum(dim=-1) - 1).clamp(min=0)  # P, T
    cache = slab_cache()
    out = model(input_ids=input_ids, attention_mask=mask if padded else None, position_ids=position_ids,
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    batch = DecodeBatch(cache, mask, torch.tensor(lengths, device=device),
                        torch.zeros(len(prompts), dtype=torch.long, device=device), padded=padded)
    return out.logits[:, -1, :], batch  # (P, V), batch of P rows, length T


def prefill_chunk(model, batch: DecodeBatch | None, tokens: list[int], device: str):
    """Prefill the next C tokens of one prompt into its own cache (chunked prefill).

    ``batch`` is what the previous chunks returned (None for the first). Returns (logits of the
    chunk's last position (1, V), the one-row DecodeBatch so far, its ``last_tokens`` for the caller to set).
    """
    import torch  # lazy: the web process imports this module and must start without torch

    # lazy: slab_cache imports torch and transformers at the top
    from inference.backends.slab_cache import slab_cache

    cache = batch.cache if batch is not None else slab_cache()
    start = batch.length if batch is not None else 0
    end = start + len(tokens)
    out = model(input_ids=torch.tensor([tokens], device=device),  # 1, C
                position_ids=torch.arange(start, end, device=device)[None], past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    grown = DecodeBatch(cache, torch.ones(1, end, dtype=torch.long, device=device), torch.tensor([end], device=device),
                        torch.zeros(1, dtype=torch.long, device=device), padded=False)
    return out.logits[:, -1, :], grown


def token_owners(prompts: list[list[int]], keys: list[str]) -> list[str]:
    """Who owns each token of a left-padded prefill batch, row-major ("" for padding)."""
    width = max(len(prompt) for prompt in prompts)
    return [owner for prompt, key in zip(prompts, keys, strict=True)
            for owner in [""] * (width - len(prompt)) + [key] * len(prompt)]


def merge(batch: DecodeBatch | None, new: DecodeBatch | None) -> DecodeBatch | None:
    """The rows of ``new`` join the running ``batch`` (after its rows); the shorter side is left-padded."""
    import torch  # lazy: the web process imports this module and must start without torch

    if batch is None or new is None:
        return new if batch is None else batch
    width = max(batch.length, new.length)
    pad_rows(batch.cache, width - batch.length)
    pad_rows(new.cache, width - new.length)
    for layer, joining in zip(batch.cache.layers, new.cache.layers, strict=True):
        layer.keys = torch.cat([layer.keys, joining.keys], dim=0)  # B+P, H, L, D
        layer.values = torch.cat([layer.values, joining.values], dim=0)  # B+P, H, L, D
    return DecodeBatch(
        cache=batch.cache,
        attention_mask=torch.cat([left_pad(batch.attention_mask, width - batch.length),
                                  left_pad(new.attention_mask, width - new.length)], dim=0),  # B+P, L
        positions=torch.cat([batch.positions, new.positions]),  # B+P
        last_tokens=torch.cat([batch.last_tokens, new.last_tokens]),  # B+P
        padded=batch.padded or new.padded or batch.length != new.length,
    )


def pad_rows(cache, columns: int) -> None:
    """Left-pad every layer's keys/values with ``columns`` zero columns."""
    if columns <= 0:
        return
    for layer in cache.layers:
        layer.keys = left_pad(layer.keys, columns, dim=2)  # B, H, L+columns, D
        layer.values = left_pad(layer.values, columns, dim=2)


def left_pad(tensor, columns: int, dim: int = 1):
    import torch  # lazy: the web process imports this module and must start without torch

    if columns <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = columns
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def decode_step(model, batch: DecodeBatch, device: str):
    """Feed every row's last token; returns next-token logits (B, V) and advances masks and positions."""
    import torch  # lazy: the web process imports this module and must start without torch

    cache_position = torch.tensor([batch.length], device=device)  # 1 — the new column
    batch.attention_mask = torch.cat(
        [batch.attention_mask, batch.attention_mask.new_ones(batch.size, 1)], dim=1
    )  # B, L+1
    # Without padding the mask is all ones: leaving it out lets attention take its unmasked causal path.
    out = model(input_ids=batch.last_tokens[:, None], attention_mask=batch.attention_mask if batch.padded else None,
                position_ids=batch.positions[:, None], past_key_values=batch.cache,
                cache_position=cache_position, use_cache=True, logits_to_keep=1)
    batch.positions = batch.positions + 1  # B
    return out.logits[:, -1, :]  # B, V


def set_next_tokens(batch: DecodeBatch, tokens: list[int], device: str) -> None:
    import torch  # lazy: the web process imports this module and must start without torch

    batch.last_tokens = torch.tensor(tokens, device=device)  # B


def evict(batch: DecodeBatch, keep: list[int]) -> DecodeBatch | None:
    """Keep only the rows in ``keep`` (batch order); drop padding columns no remaining row needs."""
    import torch  # lazy: the web process imports this module and must start without torch

    if not keep:
        return None
    if len(keep) == batch.size:
        return batch
    index = torch.tensor(keep, device=batch.attention_mask.device)  # B'
    mask = batch.attention_mask.index_select(0, index)  # B', L
    first = int(mask.any(dim=0).long().argmax())  # first column some row still uses
    for layer in batch.cache.layers:
        layer.keys = layer.keys.index_select(0, index)[:, :, first:, :]  # B', H, L-first, D
        layer.values = layer.values.index_select(0, index)[:, :, first:, :]
    mask = mask[:, first:]  # B', L-first
    return DecodeBatch(batch.cache, mask, batch.positions.index_select(0, index),
                       batch.last_tokens.index_select(0, index), padded=not bool(mask.all()))


def sample(logits, params: Sequence[SamplingParams], generators: Sequence) -> list[int]:
    """One token per row: argmax for temperature 0, else temperature + top-p sampling. logits (B, V)."""
    import torch  # lazy: the web process imports this module and must start without torch

    tokens = logits.argmax(dim=-1).tolist()  # B
    for row, row_params in enumerate(params):
        if row_params.temperature <= 0:
            continue
        probs = torch.softmax(logits[row].float() / row_params.temperature, dim=-1)  # V
        if row_params.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)  # V, V
            outside = sorted_probs.cumsum(0) - sorted_probs > row_params.top_p  # V
            sorted_probs[outside] = 0.0
            choice = torch.multinomial(sorted_probs, 1, generator=generators[row])  # 1
            tokens[row] = int(order[choice])
        else:
            tokens[row] = int(torch.multinomial(probs, 1, generator=generators[row]))
    return tokens


def make_generator(seed: int | None, device: str):
    """A per-request random generator when the request fixes a seed (else the global one)."""
    import torch  # lazy: the web process imports this module and must start without torch

    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
