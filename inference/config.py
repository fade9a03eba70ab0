"""The engine's parameters in one place, read once from Django settings.

Like gpt-fast's ``ModelArgs``: every knob the generation engine, its backends and
the inference task look at is a field here with a comment, so a reader sees in one
screen what can be tuned and what the defaults are. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class EngineConfig:
    """How this process generates text (one engine, one model per process)."""

    backend: str = "transformers"  # "transformers" (in-process), "openai" (remote endpoint) or "vllm"
    model: str = "smollm2-135m"  # bundled name, local HF directory, or the remote model's name
    device: str = "auto"  # "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:1"
    dtype: str = "auto"  # "auto" (bf16 on GPU and on CPUs with AMX/AVX512-BF16, else fp32), "float32", "bfloat16", "float16"
    # "none"; "auto" (fp16 weights for an fp32 model on a CPU, else none); CPU: "fp16-weight", "int8"
    # (= "int8-dynamic"), "int8-channel" — torch dynamic-quantized Linear, see BENCHMARKS.md; vllm: its own names
    quantization: str = "auto"
    max_batch: int = 8  # sequences decoded together; later arrivals wait for a free slot
    max_new_tokens: int = 512  # hard cap on a request's max_new_tokens (validated at submit)
    # Prompt tokens prefilled together in one pass. Short prompts share a pass; a longer one goes alone,
    # and while other rows decode it is prefilled in even chunks of ≤ this many tokens, a decode step of
    # the running rows after each (chunked prefill), so it never stalls their streams for its whole prefill.
    # Measured on the 2-core CPU: one 8×300-token pass made every TTFT wait for all 8 prefills (c=4 TTFT p50
    # 16 s vs 5 s).
    prefill_token_budget: int = 512
    # Prompt prefixes (a chat's leading system message) whose keys/values are kept for the next request
    # starting with them; 0 turns the prefix cache off. SmolLM2's ~80-token system prompt: ~4 MB an entry.
    prefix_cache_entries: int = 8
    timeout_s: float = 300.0  # a generation running longer is stopped and reported as failed
    stale_after_s: float = 360.0  # a job "running" this long without finishing is reaped as failed
    stream_maxlen: int = 4096  # events kept per token stream (Redis XADD MAXLEN ~)
    stream_ttl_s: int = 3600  # a token stream expires this long after its last event
    openai_base_url: str = ""  # openai backend: e.g. http://127.0.0.1:8001/v1
    openai_api_key: str = ""  # openai backend: sent as a Bearer token when set
    request_timeout_s: float = 30.0  # openai backend: connect/read timeout for one HTTP call
    num_threads: int = 0  # CPU: torch intra-op threads (0 = torch's default)


def engine_config() -> EngineConfig:
    """The EngineConfig described by the current Django settings."""
    timeout = float(settings.KEFU_GENERATION_TIMEOUT)
    return EngineConfig(
        backend=settings.KEFU_MODEL_BACKEND,
        model=settings.KEFU_MODEL,
        device=settings.KEFU_DEVICE,
        dtype=settings.KEFU_DTYPE,
        quantization=settings.KEFU_QUANTIZATION,
        max_batch=settings.KEFU_MAX_BATCH,
        max_new_tokens=settings.KEFU_MAX_NEW_TOKENS,
        prefill_token_budget=int(getattr(settings, "KEFU_PREFILL_TOKEN_BUDGET", 512)),
        prefix_cache_entries=int(getattr(settings, "KEFU_PREFIX_CACHE_ENTRIES", 8)),
        timeout_s=timeout,
        stale_after_s=float(getattr(settings, "KEFU_GENERATION_STALE_AFTER", timeout + 60)),
        stream_maxlen=int(getattr(settings, "KEFU_STREAM_MAXLEN", 4096)),
        stream_ttl_s=int(getattr(settings, "KEFU_STREAM_TTL", 3600)),
        openai_base_url=settings.KEFU_OPENAI_BASE_URL,
        openai_api_key=settings.KEFU_OPENAI_API_KEY,
        num_threads=int(getattr(settings, "KEFU_TORCH_THREADS", 0)),
    )
