"""Engine events become Prometheus samples (names after vLLM's); the vLLM backend is import-guarded."""

from __future__ import annotations

import importlib.util

import pytest
from prometheus_client import REGISTRY

from inference.params import GenerationRequest, SamplingParams


def sample(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.mark.slow
def test_engine_listener_exports_latency_tokens_and_expert_load(make_engine):
    # given an engine over a tiny MoE model with the metrics listener attached (as the runtime attaches it)
    import torch
    from django.conf import settings

    from inference.loader import LoadedModel, build_tiny_moe
    from inference.metrics import engine_listener

    model, tokenizer = build_tiny_moe("olmoe", models_dir=settings.KEFU_DATA_DIR / "models", dtype=torch.float32)
    engine = make_engine(LoadedModel(None, model.eval(), tokenizer, "cpu", "float32"))
    engine.listeners.append(engine_listener)
    before = {name: sample(name) for name in ("kefu_generation_tokens_total", "kefu_time_to_first_token_seconds_count",
                                              "kefu_e2e_request_latency_seconds_count",
                                              "kefu_inter_token_latency_seconds_count")}
    done_before = sample("kefu_request_success_total", {"finished_reason": "length"})

    # when one request generates 5 tokens
    output = engine.submit(GenerationRequest("m", ({"role": "user", "content": "hi"},),
                                             SamplingParams(temperature=0, max_new_tokens=5))).result(timeout=60)

    # then the counters and histograms moved by exactly that request
    assert output.finish_reason in ("length", "stop")
    assert sample("kefu_generation_tokens_total") - before["kefu_generation_tokens_total"] == output.completion_tokens
    assert sample("kefu_time_to_first_token_seconds_count") - before["kefu_time_to_first_token_seconds_count"] == 1
    assert sample("kefu_e2e_request_latency_seconds_count") - before["kefu_e2e_request_latency_seconds_count"] == 1
    assert sample("kefu_inter_token_latency_seconds_count") > before["kefu_inter_token_latency_seconds_count"]
    if output.finish_reason == "length":
        assert sample("kefu_request_success_total", {"finished_reason": "length"}) == done_before + 1
    # and the MoE load imbalance of each layer is exported (≥ 1 by definition once tokens were routed)
    assert sample("kefu_moe_expert_load_max_over_mean", {"layer": "0"}) >= 1.0
    assert sample("kefu_num_requests_running") == 0


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed: the guard is moot")
def test_vllm_backend_without_vllm_says_how_to_install_it():
    from inference.backends.vllm_backend import VllmBackend
    from inference.config import EngineConfig

    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[vllm\]'"):
        VllmBackend(EngineConfig(backend="vllm", model="/models/some-moe"))


def test_gpu_memory_gauges_stay_zero_for_a_cpu_engine():
    from inference.metrics import gpu_memory_sample

    # when a CPU engine's event samples GPU memory / then nothing is read and the gauges keep their value
    before = REGISTRY.get_sample_value("kefu_gpu_memory_used_ratio")
    assert gpu_memory_sample("cpu", every_s=0) is None
    assert REGISTRY.get_sample_value("kefu_gpu_memory_used_ratio") == before
    if not __import__("torch").cuda.is_available():  # exported, and 0, where there is no GPU at all
        assert before == 0.0


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_memory_gauges_follow_the_device():
    import torch

    from inference.metrics import gpu_memory_sample

    # given 512 MiB held on the GPU
    held = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda")
    # when sampled
    ratio = gpu_memory_sample("cuda", every_s=0)
    # then used / total is what the driver reports, and at least the block this test holds
    total = torch.cuda.get_device_properties(0).total_memory
    assert sample("kefu_gpu_memory_total_bytes") == pytest.approx(total, rel=0.01)
    assert sample("kefu_gpu_memory_used_bytes") >= held.numel()
    assert 0 < ratio == pytest.approx(sample("kefu_gpu_memory_used_ratio")) <= 1


def test_prefix_cache_lookups_are_counted_in_tokens():
    from inference.metrics import engine_listener

    # given an engine-like object the listener can read counts from
    class Idle:
        device = "cpu"

        def counts(self):
            return 0, 0

    queries, hits = sample("kefu_prefix_cache_queries_total"), sample("kefu_prefix_cache_hits_total")
    # when a lookup of an 80-token prefix misses and a second one hits
    engine_listener("prefix_cache", engine=Idle(), hit=False, tokens=80)
    engine_listener("prefix_cache", engine=Idle(), hit=True, tokens=80)
    # then 160 tokens were looked up and 80 found
    assert sample("kefu_prefix_cache_queries_total") - queries == 160
    assert sample("kefu_prefix_cache_hits_total") - hits == 80


class IdleEngine:
    """What engine_listener reads of an engine: its counts and device (a CPU one samples no GPU)."""

    device = "cpu"
    expert_window = None

    def counts(self) -> tuple[int, int]:
        return 0, 0


def test_an_unknown_finish_reason_is_counted_as_other():
    from inference.handle import GenerationOutput
    from inference.metrics import engine_listener

    # given a backend (say an OpenAI-compatible server) that finishes with reasons of its own, each different
    before = sample("kefu_request_success_total", {"finished_reason": "other"})
    stop_before = sample("kefu_request_success_total", {"finished_reason": "stop"})
    for n in range(3):
        engine_listener("finished", engine=IdleEngine(), output=GenerationOutput(text="", finish_reason=f"odd-{n}"))
    engine_listener("finished", engine=IdleEngine(), output=GenerationOutput(text="", finish_reason="stop"))
    # then they share one "other" series and none of them became a label value
    assert sample("kefu_request_success_total", {"finished_reason": "other"}) == before + 3
    assert sample("kefu_request_success_total", {"finished_reason": "stop"}) == stop_before + 1
    assert not any(s.labels.get("finished_reason", "").startswith("odd-")
                   for metric in REGISTRY.collect() for s in metric.samples)
