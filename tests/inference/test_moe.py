"""MoE routing telemetry on tiny random models of each family, checked against a plain loop."""

from __future__ import annotations

import math

import pytest
from django.conf import settings

from inference.loader import build_tiny_moe
from inference.moe import ExpertLoadWindow, attach_expert_counter, imbalance, router_modules

FAMILIES = ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2", "deepseek_v3"]


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request):
    import torch

    model, tokenizer = build_tiny_moe(request.param, models_dir=settings.KEFU_DATA_DIR / "models", dtype=torch.float32)
    return request.param, model.eval(), tokenizer


def reference_choice(family: str, gate, logits: list[float]) -> list[int]:
    """The experts one token goes to, computed with plain Python from its router logits."""
    top_k = gate.top_k
    if family == "deepseek_v3":
        bias = gate.e_score_correction_bias.tolist()
        scores = [1 / (1 + math.exp(-value)) + bias[index] for index, value in enumerate(logits)]
        return group_limited(scores, gate.num_group, gate.topk_group, top_k,
                             group_score=lambda group: sum(sorted(group, reverse=True)[:2]))
    if family == "deepseek_v2":
        return group_limited(logits, gate.num_group, gate.topk_group, top_k, group_score=max)
    return sorted(range(len(logits)), key=lambda index: -logits[index])[:top_k]


def group_limited(scores: list[float], groups: int, keep_groups: int, top_k: int, *, group_score) -> list[int]:
    size = len(scores) // groups
    ranked_groups = sorted(range(groups), key=lambda group: -group_score(scores[group * size:(group + 1) * size]))
    allowed = [index for group in ranked_groups[:keep_groups] for index in range(group * size, (group + 1) * size)]
    return sorted(allowed, key=lambda index: -scores[index])[:top_k]


def test_counts_match_a_plain_loop_over_router_logits(tiny):
    import torch

    # given a tiny MoE of one family with the counter attached, and a hook keeping each router's logits
    family, model, _ = tiny
    counter = attach_expert_counter(model)
    routers = router_modules(model)
    if family == "deepseek_v3":  # a non-zero load-balancing bias, so the check covers it
        for _, gate, num_experts, _ in routers:
            gate.e_score_correction_bias.copy_(torch.randn(num_experts, generator=torch.Generator().manual_seed(2)))
    seen: dict[int, list] = {}
    keepers = [gate.register_forward_hook(lambda module, args, output, position=position:
                                          seen.setdefault(position, []).append(output[0].detach()))
               for position, (_, gate, _, _) in enumerate(routers)]
    try:
        # when two requests' tokens go through one forward pass (a batch of 2 rows × 5 tokens)
        input_ids = torch.randint(0, 1000, (2, 5), generator=torch.Generator().manual_seed(1))
        counter.set_owners(["a"] * 5 + ["b"] * 5)
        with torch.inference_mode():
            model(input_ids=input_ids)
        counts = {"a": counter.pop("a"), "b": counter.pop("b")}
    finally:
        counter.detach()
        for keeper in keepers:
            keeper.remove()

    # then each request's per-layer, per-expert counts equal the plain loop's
    for position, (_, gate, num_experts, top_k) in enumerate(routers):
        router_logits = seen[position][0].reshape(-1, num_experts).tolist()  # N, E
        for owner, rows in (("a", router_logits[:5]), ("b", router_logits[5:])):
            expected = [0] * num_experts
            for logits in rows:
                for expert in reference_choice(family, gate, logits):
                    expected[expert] += 1
            assert counts[owner]["counts"][position] == expected, (family, position, owner)
            assert sum(expected) == 5 * top_k
    assert counts["a"]["num_experts"] == routers[0][2]
    assert counter.pop("a") is None  # popped once


@pytest.mark.slow
def test_engine_attributes_expert_counts_to_each_request(tiny, make_engine):
    # given a batching engine over a tiny MoE model
    from inference.loader import LoadedModel
    from inference.params import GenerationRequest, SamplingParams

    family, model, tokenizer = tiny
    loaded = LoadedModel(spec=None, model=model, tokenizer=tokenizer, device="cpu", dtype="float32")
    engine = make_engine(loaded, start=False)

    # when two requests of different lengths are prefilled together (left padding) and decode together
    handles = [engine.submit(GenerationRequest(f"{family}-{index}", ({"role": "user", "content": text},),
                                               SamplingParams(temperature=0, max_new_tokens=tokens)))
               for index, (text, tokens) in enumerate([("hello", 4), ("a much longer question about routing", 7)])]
    engine.start()
    outputs = [handle.result(timeout=120) for handle in handles]

    # then each request's counts cover exactly the tokens it fed (never the padding): prompt + generated - 1, times top_k per layer
    top_k = router_modules(model)[0][3]
    for output in outputs:
        fed = output.prompt_tokens + output.completion_tokens - 1
        assert output.expert_counts is not None
        assert [sum(row) for row in output.expert_counts["counts"]] == [fed * top_k] * len(output.expert_counts["layers"])
    assert engine.expert_window.layer_loads()
    # and batching did not change a token: each equals greedy generate on its own
    import torch

    from inference.backends.transformers_backend import encode_chat

    for handle, output in zip(handles, outputs, strict=True):
        prompt = encode_chat(tokenizer, handle.request.messages)
        with torch.inference_mode():
            reference = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                       max_new_tokens=handle.request.params.max_new_tokens, do_sample=False)
        assert list(output.token_ids) == reference[0, len(prompt):].tolist(), family


def test_dense_model_reports_no_experts(smollm):
    assert router_modules(smollm.model) == []
    assert attach_expert_counter(smollm.model) is None


def test_imbalance_is_max_over_mean_and_coefficient_of_variation():
    assert imbalance([10, 10, 10, 10]) == (1.0, 0.0)
    max_over_mean, cv = imbalance([40, 0, 0, 0])
    assert max_over_mean == 4.0 and cv == pytest.approx(math.sqrt(3))
    assert imbalance([0, 0]) == (0.0, 0.0)


def test_window_sums_recent_requests_and_forgets_old_ones():
    # given a 60 s window with an old request and two recent ones
    window = ExpertLoadWindow(window_s=60)
    window.add({"layers": [0, 1], "num_experts": 2, "counts": [[9, 9], [9, 9]]}, now=0.0)
    window.add({"layers": [0, 1], "num_experts": 2, "counts": [[3, 1], [2, 2]]}, now=100.0)
    window.add({"layers": [0, 1], "num_experts": 2, "counts": [[1, 3], [4, 0]]}, now=110.0)

    # when it is read at t=120
    loads = window.layer_loads(now=120.0)

    # then only the recent two count, per layer, with their imbalance
    assert [(load.layer, load.counts) for load in loads] == [(0, (4, 4)), (1, (6, 2))]
    assert loads[0].max_over_mean == 1.0 and loads[1].max_over_mean == 1.5
