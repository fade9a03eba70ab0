"""The inference benchmark: TTFT and tokens/s of the batching engine, against plain ``generate``.

Used by ``python manage.py inference_bench`` and ``bench/inference_bench.py``. Two load shapes
per concurrency C on one :class:`~inference.engine.BatchingEngine`:

- **wave**: C requests submitted at once, ``rounds`` times; the wave ends when its longest
  answer does, so its tail (the last rows decoding alone) counts against the aggregate;
- **sustained**: C clients, each sending its next request when its previous answer is done
  (a closed loop, like vLLM's ``benchmark_serving --max-concurrency``), ``requests_per_client``
  each: the batch stays full until the clients run out, as on a busy service.

Each row reports TTFT p50/p95, aggregate tokens/s (all completion tokens / wall time from the
first submit to the last answer) and per-stream tokens/s (decode rate after the first token). The
baseline, in the same process on the same model, is plain sequential ``model.generate``
(batch 1, greedy) over the same prompts; the batching gain is aggregate / baseline.
Prompts are ~``prompt_tokens`` long and shaped like the chat app's: one system prompt shared by
every request (~80 tokens: what the engine's prefix cache keeps), then passages that differ per
request and the question. Greedy; answers may stop at EOS before ``max_new_tokens`` (the token
counts are the real ones).

Budget on the 2-core CPU with SmolLM2-135M: ~2-4 min for 1,4,8 with the defaults; ~1 GB RSS.
"""

from __future__ import annotations

import resource
import statistics
import threading
import time
from dataclasses import dataclass, field

from inference.backends.transformers_backend import encode_chat, load_model, quantize
from inference.engine import BatchingEngine
from inference.params import GenerationRequest, SamplingParams
from kefu import compute

CONTEXT = (
    "You are the support assistant of Acme Home Appliances. Answer in two or three sentences, "
    "using only these policies. Returns: unused items can be returned within 30 days with the receipt; "
    "opened small appliances within 14 days if faulty. Warranty: two years on parts and labour, five years "
    "on compressor and motor; register the product online to extend it by one year. Delivery: free above "
    "50 euros, two to four working days, express next day for 9 euros. Repairs: book a technician online; "
    "visits cost 45 euros unless the fault is covered by the warranty. "
)
QUESTIONS = [
    "Can I return a kettle I opened last week because it leaks?",
    "How long is the warranty on the fridge compressor?",
    "What does express delivery cost?",
    "Do I pay for a technician if my washing machine breaks after three years?",
    "How do I extend my warranty?",
    "Is delivery free for a 30 euro order?",
    "Can I return an unopened toaster after 20 days?",
    "Who pays for the repair visit when the dryer motor fails in year four?",
]


@dataclass(frozen=True)
class BenchRow:
    """One line of the results table."""

    label: str  # "engine c=8", "engine c=8 sustained" or "baseline generate"
    concurrency: int
    requests: int
    ttft_p50_ms: float
    ttft_p95_ms: float
    aggregate_tok_s: float  # completion tokens of all requests / wall time
    per_stream_tok_s: float  # mean decode rate of one request after its first token
    completion_tokens: int


SYSTEM = (
    "You are the customer-service assistant of this company. Answer the customer's question using only "
    "the numbered passages. After each sentence that uses a passage, cite it as [n]. If the passages do "
    "not contain the answer, say that you do not know and offer to connect the customer with a person. "
    "Be brief and polite, and answer in the language of the question."
)
POLICIES = [sentence.strip() + "." for sentence in CONTEXT.split(". ") if sentence.strip(". ")]


def build_messages(tokenizer, index: int, prompt_tokens: int) -> tuple[dict, ...]:
    """Shaped like the chat app's prompts: one system prompt for every request (what the prefix cache
    keeps), then numbered passages that differ per request and the question, ~prompt_tokens in all."""
    def user(passages: list[str]) -> str:
        numbered = "\n\n".join(f"[{n}] (policies)\n{text}" for n, text in enumerate(passages, start=1))
        return (f"Passages:\n{numbered}\n\nQuestion: {QUESTIONS[index % len(QUESTIONS)]}\n"
                "Answer in one or two sentences from the passages above, and put the passage number in brackets.")

    sentences: list[str] = []
    while True:  # each request its own rotation of the policies, three sentences a passage
        sentences.append(POLICIES[(index * 3 + len(sentences)) % len(POLICIES)])
        passages = [" ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3)]
        messages = ({"role": "system", "content": SYSTEM}, {"role": "user", "content": user(passages)})
        if len(encode_chat(tokenizer, messages)) >= prompt_tokens - 10 or len(sentences) >= 200:
            return messages


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_wave(engine, messages: list[tuple[dict, ...]], params: SamplingParams, tag: str) -> tuple[list, float]:
    """Submit every request at once; (outputs, wall seconds until the last one finished)."""
    started = time.perf_counter()
    handles = [engine.submit(GenerationRequest(f"{tag}-{index}", message, params))
               for index, message in enumerate(messages)]
    outputs = [handle.result(timeout=3600) for handle in handles]
    return outputs, time.perf_counter() - started


def run_closed_loop(engine, clients: list[list[tuple[dict, ...]]], params: SamplingParams,
                    tag: str) -> tuple[list, float]:
    """Each client sends its messages one after another, the next when the previous answer is done;
    (outputs, wall seconds from the first submit until the last client finished)."""
    outputs: list = []
    lock = threading.Lock()

    def client(index: int, conversation: list[tuple[dict, ...]]) -> None:
        for turn, message in enumerate(conversation):
            output = engine.submit(GenerationRequest(f"{tag}-{index}-{turn}", message, params)).result(timeout=3600)
            with lock:
                outputs.append(output)

    threads = [threading.Thread(target=client, args=(index, conversation), daemon=True)
               for index, conversation in enumerate(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outputs, time.perf_counter() - started


def bench_engine(engine, tokenizer, *, concurrency: int, rounds: int, prompt_tokens: int,
                 max_new_tokens: int) -> BenchRow:
    """``rounds`` waves of ``concurrency`` requests submitted at once."""
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    runs = []
    for round_index in range(rounds):
        messages = [build_messages(tokenizer, round_index * concurrency + index, prompt_tokens)
                    for index in range(concurrency)]
        runs.append(run_wave(engine, messages, params, f"c{concurrency}r{round_index}"))
    return summarize(f"engine c={concurrency}", concurrency, runs)


def bench_sustained(engine, tokenizer, *, concurrency: int, requests_per_client: int, prompt_tokens: int,
                    max_new_tokens: int) -> BenchRow:
    """``concurrency`` closed-loop clients of ``requests_per_client`` requests each."""
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    clients = [[build_messages(tokenizer, client * requests_per_client + turn, prompt_tokens)
                for turn in range(requests_per_client)] for client in range(concurrency)]
    run = run_closed_loop(engine, clients, params, f"s{concurrency}")
    return summarize(f"engine c={concurrency} sustained", concurrency, [run])


def summarize(label: str, concurrency: int, runs: list[tuple[list, float]]) -> BenchRow:
    """One row from (outputs, wall seconds) runs; a failed request fails the benchmark."""
    outputs = [output for run_outputs, _ in runs for output in run_outputs]
    failed = [output for output in outputs if output.finish_reason not in ("stop", "length")]
    if failed:
        raise RuntimeError(f"benchmark request failed: {failed[0].finish_reason} {failed[0].error}")
    ttfts = [output.ttft_ms for output in outputs]
    rates = [output.tokens_per_s for output in outputs if output.tokens_per_s > 0]
    tokens = sum(output.completion_tokens for output in outputs)
    wall = sum(seconds for _, seconds in runs)
    return BenchRow(label, concurrency, len(outputs), percentile(ttfts, 0.5), percentile(ttfts, 0.95),
                    tokens / wall, statistics.mean(rates) if rates else 0.0, tokens)


def bench_baseline(loaded, *, requests: int, prompt_tokens: int, max_new_tokens: int) -> BenchRow:
    """Plain sequential ``model.generate`` (batch 1, greedy) on the same prompts."""
    import torch  # lazy: torch loads only when a benchmark runs

    ttfts, rates, tokens, wall = [], [], 0, 0.0
    for index in range(requests):
        prompt = encode_chat(loaded.tokenizer, build_messages(loaded.tokenizer, index, prompt_tokens))
        input_ids = torch.tensor([prompt], device=loaded.device)  # 1, T
        mask = torch.ones_like(input_ids)
        with torch.inference_mode():
            started = time.perf_counter()
            loaded.model.generate(input_ids, attention_mask=mask, max_new_tokens=1, do_sample=False)
            ttft = time.perf_counter() - started
            started = time.perf_counter()
            output = loaded.model.generate(input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                           do_sample=False)
            seconds = time.perf_counter() - started
        generated = output.shape[1] - len(prompt)
        ttfts.append(ttft * 1000)
        rates.append((generated - 1) / max(seconds - ttft, 1e-9) if generated > 1 else 0.0)
        tokens += generated
        wall += seconds
    return BenchRow("baseline generate", 1, requests, percentile(ttfts, 0.5), percentile(ttfts, 0.95),
                    tokens / wall, statistics.mean(rates), tokens)


def quantization_agreement(loaded, method: str, *, prompts: int, max_new_tokens: int) -> str:
    """How often greedy answers of the quantized model equal fp32's, token for token (a quality check)."""
    import torch  # lazy: torch loads only when a benchmark runs

    quantized = quantize(loaded.model, method, loaded.device)
    same, prefix, total = 0, 0, 0
    for index in range(prompts):
        messages = ({"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]},)
        input_ids = torch.tensor([encode_chat(loaded.tokenizer, messages)], device=loaded.device)  # 1, T
        mask = torch.ones_like(input_ids)
        with torch.inference_mode():
            answers = [model.generate(input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                      do_sample=False)[0, input_ids.shape[1]:].tolist()
                       for model in (loaded.model, quantized)]
        same += answers[0] == answers[1]
        prefix += next((i for i, (a, b) in enumerate(zip(*answers, strict=False)) if a != b),
                       min(map(len, answers)))
        total += len(answers[0])
    return (f"{method} vs fp32, greedy, {prompts} questions × ≤{max_new_tokens} tokens: {same}/{prompts} identical "
            f"answers; first differing token at {prefix / prompts:.1f} on average (fp32 answers average "
            f"{total / prompts:.1f} tokens)")


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def format_table(rows: list[BenchRow], baseline: BenchRow | None) -> str:
    """The results table; "vs engine c=1" is the batching gain the issue's goal names: a row's aggregate over
    the c=1 row of the same load shape (wave or sustained)."""
    header = ("| run | requests | TTFT p50 ms | TTFT p95 ms | aggregate tok/s | per-stream tok/s | "
              "gain vs baseline | vs engine c=1 |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    lines = [header]
    for row in ([baseline] if baseline else []) + rows:
        single = next((other for other in rows if other.concurrency == 1 and shape(other) == shape(row)), None)
        gain = f"{row.aggregate_tok_s / baseline.aggregate_tok_s:.2f}×" if baseline else "—"
        over_single = (f"{row.aggregate_tok_s / single.aggregate_tok_s:.2f}×"
                       if single and single.aggregate_tok_s and row is not baseline else "—")
        lines.append(f"| {row.label} | {row.requests} | {row.ttft_p50_ms:.0f} | {row.ttft_p95_ms:.0f} | "
                     f"{row.aggregate_tok_s:.1f} | {row.per_stream_tok_s:.1f} | {gain} | {over_single} |")
    return "\n".join(lines)


@dataclass
class StepTimes:
    """Decode-step seconds by batch size, from the engine's ``step`` events (an engine listener)."""

    by_size: dict[int, list[float]] = field(default_factory=dict)

    def __call__(self, event: str, **fields) -> None:
        if event == "step":
            self.by_size.setdefault(fields["batch_size"], []).append(fields["seconds"])

    def median_ms(self, size: int) -> float | None:
        times = self.by_size.get(size)
        return statistics.median(times) * 1000 if times else None


def batching_ceiling(*, prefill_ms: float, step_1_ms: float, step_c_ms: float, concurrency: int,
                     tokens: float) -> float:
    """The aggregate gain at ``concurrency`` over one stream if the batch stayed full: each request costs its
    prefill (compute-bound: batching saves none of it) plus its share of the batched decode steps."""
    single = prefill_ms + tokens * step_1_ms
    batched = prefill_ms + tokens * step_c_ms / concurrency
    return single / batched


def ceiling_lines(rows: list[BenchRow], steps: StepTimes) -> list[str]:
    """For each concurrency > 1: the ceiling from this run's own prefill and step times, to set the measured
    gain against (prefill = the c=1 TTFT p50; tokens = the level's mean answer length)."""
    singles = [row for row in rows if row.concurrency == 1]
    step_1 = steps.median_ms(1)
    if not singles or step_1 is None:
        return []
    prefill = min(row.ttft_p50_ms for row in singles)
    lines = []
    for level in sorted({row.concurrency for row in rows} - {1}):
        step_c = steps.median_ms(level)
        level_rows = [row for row in rows if row.concurrency == level]
        tokens = sum(row.completion_tokens for row in level_rows) / sum(row.requests for row in level_rows)
        if step_c is None or not tokens:
            continue
        ceiling = batching_ceiling(prefill_ms=prefill, step_1_ms=step_1, step_c_ms=step_c, concurrency=level,
                                   tokens=tokens)
        lines.append(f"ceiling at c={level}: {ceiling:.2f}× (prefill {prefill:.0f} ms, decode step {step_1:.1f} ms "
                     f"at batch 1 and {step_c:.1f} ms at batch {level}, {tokens:.0f} tokens a request)")
    return lines


def shape(row: BenchRow) -> str:
    return "sustained" if row.label.endswith("sustained") else "wave"


def run_benchmark(config, *, models_dir, concurrency: list[int], rounds: int, prompt_tokens: int,
                  max_new_tokens: int, baseline_requests: int, shapes: tuple[str, ...] = ("wave", "sustained"),
                  requests_per_client: int = 4, out=print) -> tuple[list[BenchRow], BenchRow | None]:
    """Load the model once, warm it up, run the baseline then each load shape and concurrency; returns the rows."""
    started = time.perf_counter()
    loaded = compute.call(load_model, config, models_dir=models_dir)  # torch runs on one thread (kefu.compute)
    out(f"model {config.model} on {loaded.device} ({loaded.dtype}); loaded in {time.perf_counter() - started:.1f} s")
    engine = BatchingEngine(loaded, config).start()
    steps = StepTimes()
    try:
        run_wave(engine, [build_messages(loaded.tokenizer, 0, prompt_tokens)], SamplingParams(0.0, 1.0, 4), "warm")
        engine.listeners.append(steps)
        baseline = None
        if baseline_requests:
            baseline = compute.call(bench_baseline, loaded, requests=baseline_requests,
                                    prompt_tokens=prompt_tokens, max_new_tokens=max_new_tokens)
            out(f"baseline: {baseline.aggregate_tok_s:.1f} tok/s, TTFT p50 {baseline.ttft_p50_ms:.0f} ms")
        rows = []
        for load in shapes:
            for level in concurrency:
                if load == "wave":
                    row = bench_engine(engine, loaded.tokenizer, concurrency=level, rounds=rounds,
                                       prompt_tokens=prompt_tokens, max_new_tokens=max_new_tokens)
                else:
                    row = bench_sustained(engine, loaded.tokenizer, concurrency=level,
                                          requests_per_client=requests_per_client,
                                          prompt_tokens=prompt_tokens, max_new_tokens=max_new_tokens)
                out(f"{row.label}: {row.aggregate_tok_s:.1f} tok/s aggregate, TTFT p50 {row.ttft_p50_ms:.0f} ms")
                rows.append(row)
    finally:
        engine.stop()
    for line in ceiling_lines(rows, steps):
        out(line)
    out(f"max RSS {max_rss_mb():.0f} MB")
    return rows, baseline
