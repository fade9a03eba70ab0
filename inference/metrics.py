"""Prometheus metrics of the generator, named after vLLM's where they mean the same.

The engine calls :func:`engine_listener` on its events (queued, first token, step,
finished); the inference task does not need to know. Exposed by the project's
``/metrics`` (web process in embedded mode) or by whatever serves the worker's
default registry. Expert load imbalance is exported per MoE layer from the engine's
rolling window.
"""

from __future__ import annotations

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
RUNNING = Gauge("kefu_num_requests_running", "Requests decoding now (vllm:num_requests_running).")
WAITING = Gauge("kefu_num_requests_waiting", "Requests waiting for a row (vllm:num_requests_waiting).")
GENERATION_TOKENS = Counter("kefu_generation_tokens", "Tokens generated (vllm:generation_tokens_total).")
PROMPT_TOKENS = Counter("kefu_prompt_tokens", "Prompt tokens prefilled (vllm:prompt_tokens_total).")
REQUEST_SUCCESS = Counter("kefu_request_success", "Finished requests by finish reason (vllm:request_success_total).",
                          ["finished_reason"])
EXPERT_IMBALANCE = Gauge("kefu_moe_expert_load_max_over_mean",
                         "Tokens of the busiest expert / mean tokens per expert, rolling window.", ["layer"])
EXPERT_CV = Gauge("kefu_moe_expert_load_cv", "Coefficient of variation of tokens per expert, rolling window.",
                  ["layer"])


def engine_listener(event: str, *, engine, **fields) -> None:
    """Turn one engine event into metric updates."""
    running, waiting = engine.counts()
    RUNNING.set(running)
    WAITING.set(waiting)
    if event == "first_token":
        TIME_TO_FIRST_TOKEN.observe(fields["ttft_s"])
    elif event == "step":
        INTER_TOKEN_LATENCY.observe(fields["seconds"])
    elif event == "finished":
        output = fields["output"]
        E2E_LATENCY.observe(output.total_ms / 1000)
        QUEUE_TIME.observe(output.queue_ms / 1000)
        GENERATION_TOKENS.inc(output.completion_tokens)
        PROMPT_TOKENS.inc(output.prompt_tokens)
        REQUEST_SUCCESS.labels(finished_reason=output.finish_reason).inc()
        if output.expert_counts:
            export_expert_load(engine.expert_window)


def export_expert_load(window) -> None:
    for load in window.layer_loads():
        EXPERT_IMBALANCE.labels(layer=str(load.layer)).set(load.max_over_mean)
        EXPERT_CV.labels(layer=str(load.layer)).set(load.coefficient_of_variation)
