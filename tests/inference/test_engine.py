"""The continuous-batching engine against plain greedy ``model.generate`` on the bundled model."""

from __future__ import annotations

import time

import pytest

from inference.backends.transformers_backend import encode_chat
from inference.params import GenerationRequest, SamplingParams

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Write two sentences about the sea, the sky and the wind in the trees on a long summer evening.",
    "hi",
]
NEW_TOKENS = 12


def request(request_id: str, text: str, **params) -> GenerationRequest:
    params = {"temperature": 0.0, "max_new_tokens": NEW_TOKENS, **params}
    return GenerationRequest(request_id, ({"role": "user", "content": text},), SamplingParams(**params))


def greedy_reference(loaded, text: str, max_new_tokens: int = NEW_TOKENS) -> list[int]:
    """What plain greedy ``generate`` produces for one prompt, on its own."""
    import torch

    prompt = encode_chat(loaded.tokenizer, [{"role": "user", "content": text}])
    with torch.inference_mode():
        output = loaded.model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                       max_new_tokens=max_new_tokens, do_sample=False)
    return output[0, len(prompt):].tolist()


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def references(smollm):
    return {text: greedy_reference(smollm, text) for text in PROMPTS}


def test_batched_tokens_equal_greedy_generate_with_a_late_joiner(smollm, make_engine, references):
    # given an engine decoding two prompts of different lengths
    engine = make_engine(smollm)
    first = [engine.submit(request(f"r{index}", text)) for index, text in enumerate(PROMPTS[:2])]

    # when a third request arrives after decoding has started (it joins the running batch)
    wait_for(lambda: engine.steps >= 2)
    late = engine.submit(request("late", PROMPTS[2]))
    handles = [*first, late]
    outputs = [handle.result(timeout=300) for handle in handles]

    # then every request got exactly the tokens greedy generate gives it on its own
    for text, output in zip(PROMPTS, outputs, strict=True):
        assert list(output.token_ids) == references[text], text
    # and the late one really decoded beside the others (it joined a running batch, not an idle engine)
    assert late.timings.started < handles[1].timings.finished


def test_prompts_prefilled_together_with_padding_equal_greedy_generate(smollm, make_engine, references):
    # given three prompts of different lengths queued before the engine runs (one padded prefill pass)
    engine = make_engine(smollm, start=False)
    handles = [engine.submit(request(f"p{index}", text)) for index, text in enumerate(PROMPTS)]

    # when the engine starts
    engine.start()

    # then each gets exactly its greedy tokens, and all were admitted in the first pass (same first-token time)
    for text, handle in zip(PROMPTS, handles, strict=True):
        assert list(handle.result(timeout=300).token_ids) == references[text], text
    assert len({handle.timings.first_token for handle in handles}) == 1


def test_streamed_text_is_the_final_text_and_counts_are_reported(smollm, make_engine):
    # given a request
    engine = make_engine(smollm)
    handle = engine.submit(request("s", PROMPTS[0]))

    # when its deltas are read as they come
    streamed = "".join(handle)
    output = handle.result(timeout=120)

    # then they add up to the final text, with token counts and timings
    assert streamed == output.text and output.text.strip()
    assert output.prompt_tokens == len(encode_chat(smollm.tokenizer, [{"role": "user", "content": PROMPTS[0]}]))
    assert output.completion_tokens == len(output.token_ids) > 0
    assert 0 < output.ttft_ms <= output.total_ms
    assert output.finish_reason in ("stop", "length")
    assert output.expert_counts is None  # a dense model has no experts


def test_stop_sequence_ends_generation_and_is_not_shown(smollm, make_engine, references):
    # given the text greedy decoding produces for a prompt
    full = smollm.tokenizer.decode(references[PROMPTS[0]], skip_special_tokens=True)
    word = full.split()[3]

    # when the same prompt runs with a stop sequence taken from the middle of that text
    engine = make_engine(smollm)
    output = engine.submit(request("stop", PROMPTS[0], stop=(word,))).result(timeout=120)

    # then the answer ends right before it
    assert output.finish_reason == "stop"
    assert output.text == full[: full.index(word)]


def test_max_new_tokens_gives_finish_reason_length(smollm, make_engine):
    engine = make_engine(smollm)
    output = engine.submit(request("len", PROMPTS[1], max_new_tokens=3)).result(timeout=120)
    assert (output.completion_tokens, output.finish_reason) == (3, "length")


def test_cancel_stops_within_one_step_and_others_go_on(smollm, make_engine, references):
    # given two requests decoding together, one of them long
    engine = make_engine(smollm)
    long = engine.submit(request("long", PROMPTS[1], max_new_tokens=200))
    other = engine.submit(request("other", PROMPTS[0]))
    wait_for(lambda: engine.steps >= 2)

    # when the long one is cancelled
    generated_at_cancel = next(len(row.generated) for row in list(engine.rows) if row.key == "long")
    long.cancel()
    cancelled = long.result(timeout=60)

    # then it ends within one step (the one in flight may still finish), and the other goes on
    assert cancelled.finish_reason == "cancelled"
    assert cancelled.completion_tokens <= generated_at_cancel + 2
    assert list(other.result(timeout=120).token_ids) == references[PROMPTS[0]]


def test_timeout_fails_the_request(smollm, make_engine):
    # given an engine whose requests may run 0.3 s
    engine = make_engine(smollm, timeout_s=0.3)

    # when a long generation is asked for
    output = engine.submit(request("slow", PROMPTS[1], max_new_tokens=400)).result(timeout=120)

    # then it ends as a timeout with an error message, long before 400 tokens
    assert output.finish_reason == "timeout"
    assert "exceeded" in output.error
    assert output.completion_tokens < 400


def test_more_requests_than_rows_wait_for_a_free_row(smollm, make_engine, references):
    # given an engine with 2 rows and 3 requests
    engine = make_engine(smollm, max_batch=2)
    handles = [engine.submit(request(f"q{index}", text)) for index, text in enumerate(PROMPTS)]

    # then all finish with their greedy tokens
    for text, handle in zip(PROMPTS, handles, strict=True):
        assert list(handle.result(timeout=300).token_ids) == references[text]


def test_prompt_too_long_fails_at_submit(smollm, make_engine):
    engine = make_engine(smollm)
    output = engine.submit(request("big", "word " * 9000, max_new_tokens=10)).result(timeout=5)
    assert output.finish_reason == "error" and "exceeds" in output.error


def test_seeded_sampling_is_reproducible(smollm, make_engine):
    engine = make_engine(smollm)
    runs = [engine.submit(request(f"seed{index}", PROMPTS[0], temperature=1.0, top_p=0.9, seed=7))
            for index in range(2)]
    first, second = (handle.result(timeout=120).token_ids for handle in runs)
    assert first == second


def test_int8_dynamic_quantization_runs_and_mostly_agrees(smollm, make_engine, references):
    # given the bundled model with its linear layers quantized to int8 (a copy; the fp32 model is untouched)
    from inference.backends.transformers_backend import quantize
    from inference.loader import LoadedModel

    quantized = quantize(smollm.model, "int8", "cpu")
    assert quantized is not smollm.model
    assert any("quantized.dynamic" in type(module).__module__ for module in quantized.modules())
    engine = make_engine(LoadedModel(smollm.spec, quantized, smollm.tokenizer, "cpu", "float32+int8"))

    # when it answers a prompt greedily
    output = engine.submit(request("q8", PROMPTS[0])).result(timeout=120)

    # then it answers, and its first token is the fp32 model's (later ones may drift: int8 changes logits)
    assert output.text.strip()
    assert output.token_ids[0] == references[PROMPTS[0]][0]


def test_fp16_weight_quantization_keeps_the_greedy_answer(smollm, make_engine, references):
    # given the bundled model with fp16 weights in its linear layers (fp32 activations; a copy)
    from inference.backends.transformers_backend import quantize
    from inference.loader import LoadedModel

    quantized = quantize(smollm.model, "fp16-weight", "cpu")
    engine = make_engine(LoadedModel(smollm.spec, quantized, smollm.tokenizer, "cpu", "float32+fp16-weight"))

    # when it answers greedily
    outputs = [engine.submit(request(f"f16-{index}", text)).result(timeout=300) for index, text in enumerate(PROMPTS)]

    # then the answers are fp32's, token for token
    assert [list(output.token_ids) for output in outputs] == [references[text] for text in PROMPTS]


def test_auto_quantization_is_fp16_weights_only_for_dense_fp32_on_a_cpu():
    from inference.backends.transformers_backend import resolve_quantization

    assert resolve_quantization("auto", "cpu", "torch.float32") == "fp16-weight"
    assert resolve_quantization("auto", "cpu", "torch.bfloat16") == "none"
    assert resolve_quantization("auto", "cuda", "torch.bfloat16") == "none"
    assert resolve_quantization("auto", "cpu", "torch.float32", moe=True) == "none"  # routers stay nn.Linear
    assert resolve_quantization("int8", "cpu", "torch.float32") == "int8"


def test_unknown_quantization_is_refused(smollm):
    from inference.backends.transformers_backend import quantize

    with pytest.raises(ValueError, match="KEFU_QUANTIZATION"):
        quantize(smollm.model, "int3", "cpu")
    with pytest.raises(ValueError, match="KEFU_QUANTIZATION"):
        quantize(smollm.model, "fp16-weight", "cuda")


def test_quantizing_a_bf16_model_is_refused_with_a_clear_message():
    import torch

    from inference.backends.transformers_backend import quantize

    model = torch.nn.Sequential(torch.nn.Linear(4, 4)).to(torch.bfloat16)
    with pytest.raises(ValueError, match="needs float32 weights"):
        quantize(model, "int8", "cpu")


def test_an_explicit_cpu_quantization_loads_fp32_weights_whatever_the_cpu(settings):
    # given dtype auto (bf16 on a CPU with AMX) and an explicit int8 quantization
    from inference.backends.transformers_backend import load_model
    from inference.config import EngineConfig

    config = EngineConfig(model="tiny-olmoe", device="cpu", dtype="auto", quantization="int8")
    # when the model is loaded
    loaded = load_model(config, models_dir=settings.KEFU_DATA_DIR / "models")
    # then its weights were loaded as fp32 and quantized
    assert loaded.dtype == "torch.float32+int8"


def test_a_long_prompt_joining_running_rows_is_prefilled_in_chunks_between_their_steps(smollm, make_engine,
                                                                                      references):
    # given an engine with a prefill budget of 8 tokens, decoding a long answer
    engine = make_engine(smollm, prefill_token_budget=8)
    steps: list[float] = []
    engine.listeners.append(lambda event, **fields: steps.append(time.monotonic()) if event == "step" else None)
    running = engine.submit(request("running", PROMPTS[1], max_new_tokens=80))
    wait_for(lambda: engine.steps >= 1)

    # when a request whose prompt is several budgets long arrives
    prompt_tokens = len(encode_chat(smollm.tokenizer, [{"role": "user", "content": PROMPTS[0]}]))
    assert prompt_tokens > 3 * 8
    late = engine.submit(request("late", PROMPTS[0]))
    output = late.result(timeout=300)

    # then the running row kept decoding while the prompt was prefilled chunk by chunk (a step after each chunk),
    # and the late request still gets exactly the tokens greedy generate gives it alone
    between = [at for at in steps if late.timings.started <= at <= late.timings.first_token]
    assert len(between) >= 3
    assert list(output.token_ids) == references[PROMPTS[0]]
    assert running.result(timeout=300).finish_reason in ("stop", "length")


SYSTEM = ("You are the customer-service assistant of a hardware shop. Answer from the passages only, cite them as "
          "[n], and say you do not know when they do not answer the question.")


def system_request(request_id: str, text: str, **params) -> GenerationRequest:
    params = {"temperature": 0.0, "max_new_tokens": NEW_TOKENS, **params}
    messages = ({"role": "system", "content": SYSTEM}, {"role": "user", "content": text})
    return GenerationRequest(request_id, messages, SamplingParams(**params))


def test_the_system_prefix_is_the_token_prefix_of_the_prompt(smollm):
    from inference.backends.transformers_backend import system_prefix_length

    # given a prompt with a system message, and one without
    with_system = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPTS[0]}]
    prompt = encode_chat(smollm.tokenizer, with_system)
    # when the cacheable prefix is measured
    length = system_prefix_length(smollm.tokenizer, with_system, prompt)
    # then it is the system turn alone, a strict prefix of the prompt; without a system message there is none
    system_only = smollm.tokenizer.decode(prompt[:length])
    assert SYSTEM in system_only and PROMPTS[0] not in system_only and 16 <= length < len(prompt)
    user_only = with_system[1:]
    assert system_prefix_length(smollm.tokenizer, user_only, encode_chat(smollm.tokenizer, user_only)) == 0


def test_prefilling_after_a_cached_prefix_gives_the_logits_of_a_full_prefill(smollm):
    import torch

    from inference.backends import transformers_backend as tb

    # given a prompt whose first 40 tokens' keys/values were kept as a snapshot
    prompt = encode_chat(smollm.tokenizer, [{"role": "system", "content": SYSTEM},
                                            {"role": "user", "content": PROMPTS[1]}])
    with torch.inference_mode():
        full, _ = tb.prefill(smollm.model, [prompt], "cpu")
        _, prefix = tb.prefill_chunk(smollm.model, None, prompt[:40], "cpu")
        snapshot = tb.cache_snapshot(prefix)
        # when two requests continue from that snapshot
        first, _ = tb.prefill_chunk(smollm.model, tb.batch_from_snapshot(snapshot, "cpu"), prompt[40:], "cpu")
        second, _ = tb.prefill_chunk(smollm.model, tb.batch_from_snapshot(snapshot, "cpu"), prompt[40:], "cpu")
    # then both get the full prefill's next-token logits (the snapshot was copied, not written into)
    assert torch.allclose(first, full, atol=1e-4) and torch.allclose(second, full, atol=1e-4)
    assert int(snapshot[0][0].shape[-2]) == 40


def test_chats_sharing_a_system_prompt_prefill_it_once_and_answer_as_without_the_cache(smollm, make_engine):
    # given an engine with the prefix cache and one without
    cached, plain = make_engine(smollm), make_engine(smollm, prefix_cache_entries=0)

    # when three chats with the same system prompt arrive at once (the later ones join running rows),
    # and the same three one after another on the plain engine
    handles = [cached.submit(system_request(f"cached{index}", text)) for index, text in enumerate(PROMPTS)]
    answers = {"cached": [handle.result(timeout=300).token_ids for handle in handles],
               "plain": [plain.submit(system_request(f"plain{index}", text)).result(timeout=300).token_ids
                         for index, text in enumerate(PROMPTS)]}

    # then the first prefilled the system prompt and the next two started after it
    assert (cached.prefixes.queries, cached.prefixes.hits, len(cached.prefixes.items)) == (3, 2, 1)
    assert plain.prefixes.queries == 0
    # and every answer is token for token the uncached engine's
    assert answers["cached"] == answers["plain"]


def test_the_prefix_cache_keeps_only_the_most_recent_prefixes():
    from inference.engine import PrefixCache

    # given a cache of two entries holding prefixes a and b, a used last
    cache = PrefixCache(2)
    cache.put((1,), "a")
    cache.put((2,), "b")
    assert cache.get((1,)) == "a"
    # when a third prefix is kept
    cache.put((3,), "c")
    # then the least recently used one (b) is gone and the others stay
    assert cache.get((2,)) is None and cache.get((1,)) == "a" and cache.get((3,)) == "c"
    assert (cache.queries, cache.hits) == (4, 3)
