"""Prometheus metrics of the generator, named after vLLM's where they mean the same.

The engine calls :func:`engine_listener` on its events (queued, first token, step,
finished); the inference task does not need to know. Exposed by the project's
``/metrics`` (web process in embedded mode) or by whatever serves the worker's
default registry. Expert load imbalance is exported per MoE layer from the engine's
rolling window. GPU memory (used / total of the engine's device, as ``torch.cuda.mem_get_info``
reports it for the whole device) is sampled at most once a second from the engine's events
and every heartbeat of the worker; it stays 0 where the model runs without CUDA.
Gauges say how several processes' values combine (``multiprocess_mode``) when
``PROMETHEUS_MULTIPROC_DIR`` is set.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)
TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5)

TIME_TO_FIRST_TOKEN = Histogram("kefu_time_to_first_token_seconds", "Time to first token (vllm:time_to_first_token_seconds).",
                                buckets=LATENCY_BUCKETS)
INTER_TOKEN_LATENCY = Histogram("kefu_inter_token_latency_seconds",
                                "Seconds per decode step (vllm:inter_token_latency_seconds).", buckets=TOKEN_BUCKETS)
E2E_LATENCY = Histogram("kefu_e2e_request_latency_seconds", "Submit to finish (vllm:e2e_request_latency_seconds).",
                        buckets=LATENCY_BUCKETS)
QUEUE_TIME = Histogram("kefu_request_queue_time_seconds", "Submit to prefill (vllm:request_queue_time_seconds).",
                       buckets=LATENCY_BUCKETS)
RUNNING = Gauge("kefu_num_requests_running", "Requests decoding now (vllm:num_requests_running).",
                multiprocess_mode="livesum")
WAITING = Gauge("kefu_num_requests_waiting", "Requests waiting for a row (vllm:num_requests_waiting).",
                multiprocess_mode="livesum")
GENERATION_TOKENS = Counter("kefu_generation_tokens", "Tokens generated (vllm:generation_tokens_total).")
PROMPT_TOKENS = Counter("kefu_prompt_tokens", "Prompt tokens prefilled (vllm:prompt_tokens_total).")
PREFIX_CACHE_QUERIES = Counter("kefu_prefix_cache_queries",
                               "Prompt-prefix tokens looked up in the prefix cache (vllm:prefix_cache_queries).")
PREFIX_CACHE_HITS = Counter("kefu_prefix_cache_hits",
                            "Prompt-prefix tokens found in the prefix cache, not prefilled (vllm:prefix_cache_hits).")
REQUEST_SUCCESS = Counter("kefu_request_success", "Finished requests by finish reason (vllm:request_success_total).",
                          ["finished_reason"])
EXPERT_IMBALANCE = Gauge("kefu_moe_expert_load_max_over_mean",
                         "Tokens of the busiest expert / mean tokens per expert, rolling window.", ["layer"])
EXPERT_CV = Gauge("kefu_moe_expert_load_cv", "Coefficient of variation of tokens per expert, rolling window.",
                  ["layer"])
GPU_MEMORY_USED_RATIO = Gauge("kefu_gpu_memory_used_ratio",
                              "Used / total memory of the inference GPU (torch.cuda.mem_get_info); 0 without CUDA.",
                              multiprocess_mode="livemax")
GPU_MEMORY_USED_BYTES = Gauge("kefu_gpu_memory_used_bytes", "Bytes in use on the inference GPU; 0 without CUDA.",
                              multiprocess_mode="livemax")
GPU_MEMORY_TOTAL_BYTES = Gauge("kefu_gpu_memory_total_bytes", "Total bytes of the inference GPU; 0 without CUDA.",
                               multiprocess_mode="livemax")
# finish reasons the engine and backends produce (inference.handle.GenerationOutput); anything else — an
# OpenAI-compatible server may answer with its own — is counted as "other", so the label stays bounded.
FINISH_REASONS = frozenset({"stop", "length", "cancelled", "timeout", "error"})
GPU_SAMPLE_EVERY_S = 1.0
_gpu_sampled_at = 0.0
_gpu_lock = threading.Lock()


def engine_listener(event: str, *, engine, **fields) -> None:
    """Turn one engine event into metric updates."""
    running, waiting = engine.counts()
    RUNNING.set(running)
    WAITING.set(waiting)
    gpu_memory_sample(getattr(engine, "device", None))
    if event == "first_token":
        TIME_TO_FIRST_TOKEN.observe(fields["ttft_s"])
    elif event == "step":
        INTER_TOKEN_LATENCY.observe(fields["seconds"])
    elif event == "prefix_cache":
        PREFIX_CACHE_QUERIES.inc(fields["tokens"])
        PREFIX_CACHE_HITS.inc(fields["tokens"] if fields["hit"] else 0)
    elif event == "finished":
        output = fields["output"]
        E2E_LATENCY.observe(output.total_ms / 1000)
        QUEUE_TIME.observe(output.queue_ms / 1000)
        GENERATION_TOKENS.inc(output.completion_tokens)
        PROMPT_TOKENS.inc(output.prompt_tokens)
        REQUEST_SUCCESS.labels(finished_reason=finish_reason_label(output.finish_reason)).inc()
        if output.expert_counts:
            export_expert_load(engine.expert_window)


def finish_reason_label(reason: str) -> str:
    """A known finish reason, or ``other`` (bounded label values)."""
    return reason if reason in FINISH_REASONS else "other"


def export_expert_load(window) -> None:
    for load in window.layer_loads():
        EXPERT_IMBALANCE.labels(layer=str(load.layer)).set(load.max_over_mean)
        EXPERT_CV.labels(layer=str(load.layer)).set(load.coefficient_of_variation)


def gpu_memory_sample(device=None, *, every_s: float = GPU_SAMPLE_EVERY_S) -> float | None:
    """Set the GPU memory gauges from the CUDA driver (at most once per ``every_s``); the used ratio, or None.

    ``device``: the engine's device; a non-CUDA one (or no CUDA at all) samples nothing and leaves the
    gauges at 0. ``None`` means the current CUDA device, when CUDA is available.
    """
    global _gpu_sampled_at
    now = time.monotonic()
    with _gpu_lock:
        if now - _gpu_sampled_at < every_s:
            return None
        _gpu_sampled_at = now
    import torch  # lazy: the web process exports these metrics without torch

    if device is not None and torch.device(device).type != "cuda":
        return None
    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(device)
    used = total - free
    GPU_MEMORY_USED_BYTES.set(used)
    GPU_MEMORY_TOTAL_BYTES.set(total)
    GPU_MEMORY_USED_RATIO.set(used / total if total else 0.0)
    return used / total if total else 0.0
