"""Load a generator (model + tokenizer) from a :class:`~inference.catalog.ModelSpec`.

torch and transformers are imported inside the functions: only processes that
generate (the inference worker, or the web process in embedded mode) pay for them.

The bundled GGUF takes ~20 s to dequantise through transformers, so it is converted
once to safetensors under ``KEFU_DATA_DIR/models/<name>`` and loaded from there
(~1 s) afterwards. ``save_pretrained`` refuses a GGUF-loaded model, so the conversion
builds a fresh model from the config and loads the state dict into it. The
conversion writes into a temporary folder and renames it, so a killed conversion
never leaves a half-written model that later loads would trust.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from inference.catalog import ModelSpec, resolve_model
from kefu.compute import cpu_has_fast_bf16

log = logging.getLogger(__name__)
_convert_lock = threading.Lock()

# Tiny MoE shapes: small enough to build in a second on a CPU, with the routing of the
# real families (several experts, top-k > 1, shared experts where the family has them).
TINY_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096)


@dataclass
class LoadedModel:
    """A model ready to run, with what the engine needs to know about it."""

    spec: ModelSpec
    model: object  # transformers PreTrainedModel, in eval mode on its device
    tokenizer: object  # transformers PreTrainedTokenizerBase
    device: str
    dtype: str


def pick_device(requested: str = "auto") -> str:
    import torch  # lazy: torch and transformers load only where a model loads

    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(requested: str, device: str):
    """bf16 on a GPU; on a CPU bf16 when it has bf16 matrix instructions, else fp32.

    With AMX or AVX512-BF16, oneDNN runs bf16 matmuls natively: on the 2-core Xeon here a
    300-token SmolLM2 prefill takes 135 ms in bf16 vs 300 ms in fp32, and greedy answers match
    fp32's for 5 of 8 benchmark questions (the rest diverge after ~20 tokens, as fp16 weights do).
    Without them bf16 is emulated and prefill is ~5x slower than fp32 (BENCHMARKS.md, Inference).
    """
    import torch  # lazy: torch and transformers load only where a model loads

    if requested == "auto":
        return torch.bfloat16 if device.startswith("cuda") or cpu_has_fast_bf16() else torch.float32
    return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[requested]


def load_generator(spec: ModelSpec, *, models_dir: Path, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load any supported spec onto a device, in eval mode."""

    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    if spec.kind == "gguf":
        folder = converted_gguf_dir(spec, models_dir)
        model, tokenizer = load_hf_dir(folder, torch_dtype)
    elif spec.kind == "hf_dir":
        model, tokenizer = load_hf_dir(spec.path, torch_dtype)
    elif spec.kind == "tiny_moe":
        model, tokenizer = build_tiny_moe(spec.family, models_dir=models_dir, dtype=torch_dtype)
    else:
        raise ValueError(f"{spec} is not loaded in-process")
    model.to(device).eval()
    return LoadedModel(spec=spec, model=model, tokenizer=tokenizer, device=device, dtype=str(torch_dtype))


def load_hf_dir(folder: Path, torch_dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: as torch

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
    return model, tokenizer


def converted_gguf_dir(spec: ModelSpec, models_dir: Path) -> Path:
    """The safetensors copy of a GGUF model, converting it on first use."""
    target = models_dir / safe_name(spec.path.stem)
    if (target / "config.json").is_file():
        return target
    with _convert_lock:
        if not (target / "config.json").is_file():
            convert_gguf(spec.path, target)
    return target


def convert_gguf(gguf_file: Path, target: Path) -> None:
    """Dequantise a GGUF file once and save it as a normal Hugging Face directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: as torch

    log.info("converting %s to safetensors in %s (once; ~20 s)", gguf_file.name, target)
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    fresh = AutoModelForCausalLM.from_config(gguf_model.config)
    fresh.load_state_dict(gguf_model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fresh.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target) if not target.exists() else shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build_tiny_moe(family: str, *, models_dir: Path, dtype, seed: int = 0):
    """A randomly initialised MoE of one family, with the bundled SmolLM2 tokenizer."""
    import torch  # lazy: torch and transformers load only where a model loads
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: as torch

    tokenizer = AutoTokenizer.from_pretrained(converted_gguf_dir(resolve_model("smollm2-135m"), models_dir))
    config = tiny_moe_config(family, vocab_size=len(tokenizer))
    config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model, tokenizer


def tiny_moe_config(family: str, *, vocab_size: int):
    """A transformers config for a tiny model of ``family`` with real MoE routing."""
    from transformers import (  # lazy: as torch
        DeepseekV2Config,
        DeepseekV3Config,
        MixtralConfig,
        OlmoeConfig,
        Qwen2MoeConfig,
        Qwen3MoeConfig,
    )

    shape = dict(TINY_SHAPE, vocab_size=vocab_size)
    if family == "mixtral":
        return MixtralConfig(**shape, num_local_experts=8, num_experts_per_tok=2)
    if family == "qwen2_moe":
        return Qwen2MoeConfig(**shape, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=64,
                              shared_expert_intermediate_size=128, decoder_sparse_step=1)
    if family == "qwen3_moe":
        return Qwen3MoeConfig(**shape, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=64,
                              decoder_sparse_step=1, head_dim=16)
    if family == "deepseek_v2":
        # group-limited routing (4 groups, best 2) as DeepSeek-V2 itself routes
        return DeepseekV2Config(**dict(shape, num_key_value_heads=shape["num_attention_heads"]), n_routed_experts=8,
                                num_experts_per_tok=2, moe_intermediate_size=64, n_shared_experts=1,
                                first_k_dense_replace=0, topk_method="group_limited_greedy", n_group=4,
                                topk_group=2, kv_lora_rank=32, q_lora_rank=48, qk_rope_head_dim=16,
                                qk_nope_head_dim=16, v_head_dim=16, head_dim=16)
    if family == "olmoe":
        return OlmoeConfig(**shape, num_experts=8, num_experts_per_tok=2)
    if family == "deepseek_v3":
        # MLA attention: every head has its own latent key/value, so kv heads = heads.
        return DeepseekV3Config(**dict(shape, num_key_value_heads=shape["num_attention_heads"]), n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=64,
                                n_shared_experts=1, first_k_dense_replace=0, n_group=2, topk_group=1,
                                kv_lora_rank=32, q_lora_rank=48, qk_rope_head_dim=16, qk_nope_head_dim=16,
                                v_head_dim=16, head_dim=16, rope_scaling=None)
    raise ValueError(f"unknown tiny MoE family {family!r}")


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
