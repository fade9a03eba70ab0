"""Weight formats of the bundled model compared on this CPU: speed, memory and answer quality vs fp32.

    .venv/bin/python bench/inference_quant.py [--variants fp32,fp16-weight,int8,int8-channel,bf16]
                                              [--questions 20] [--answer-tokens 32] [--threads 2]

Each variant runs in its own subprocess (so its peak RSS is its own) on the engine's model functions
(``prefill`` / ``decode_step``, the batching engine's path):

- prefill ms of one ~300-token support prompt (the TTFT of a request on an idle engine, median of 3);
- decode tok/s at batch 1 and batch 8 (rows with ~300-token contexts, median step time);
- peak RSS of the process, and its RSS at the end;
- quality: greedy answers to the first ``--questions`` questions of ``chat/data/eval/zaragoza.jsonl``
  (batched, ``--answer-tokens`` each) compared token by token with fp32's, which runs first as the
  baseline in the same invocation: identical answers, mean position of the first differing token,
  and three example answers side by side.

Variants: ``fp32`` (default on CPU), ``bf16`` (weights and compute; this CPU has no bf16 instructions),
``fp16-weight`` / ``int8`` / ``int8-channel`` (``KEFU_QUANTIZATION`` values: torch's fbgemm dynamic
quantized Linear). Not a variant: torch's weight-only int8/int4 kernels (``torch._weight_int8pack_mm``,
``_weight_int4pack_mm_for_cpu``) have no fast path on this AVX2 CPU — one SmolLM2 MLP projection took
5× (batch 1) to 40× (300 rows) longer than fp32 — see BENCHMARKS.md. Budget: ~1-2 min per variant at idle.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

VARIANTS = ("fp32", "fp16-weight", "int8", "int8-channel", "bf16")
QUESTIONS_FILE = ROOT / "chat" / "data" / "eval" / "zaragoza.jsonl"
SYSTEM = "You are a helpful customer-service assistant. Answer briefly."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--answer-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--decode-steps", type=int, default=12)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_variant(args.one, args)))
        return
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if "fp32" not in names:
        names.insert(0, "fp32")  # the baseline answers every other variant is compared with
    names.sort(key=lambda name: name != "fp32")
    results = [run_variant(name, args) for name in names]
    print(format_report(results))


def run_variant(name: str, args) -> dict:
    """One variant in a fresh process (its own RSS); returns its measurements."""
    command = [sys.executable, __file__, "--one", name, "--questions", str(args.questions),
               "--answer-tokens", str(args.answer_tokens), "--threads", str(args.threads),
               "--decode-steps", str(args.decode_steps)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"variant {name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return result


def measure_variant(name: str, args) -> dict:
    import django

    django.setup()
    import torch
    from django.conf import settings

    from inference.backends import transformers_backend as tb
    from inference.benchmark import build_messages
    from inference.catalog import resolve_model
    from inference.loader import load_generator

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    loaded = load_generator(resolve_model("smollm2-135m"), models_dir=settings.KEFU_DATA_DIR / "models",
                            device="cpu", dtype="bfloat16" if name == "bf16" else "float32")
    model = apply_variant(loaded.model, name)
    tokenizer = loaded.tokenizer
    long_prompts = [tb.encode_chat(tokenizer, build_messages(tokenizer, index, 300)) for index in range(8)]
    with torch.inference_mode():
        prefill_ms = statistics.median(time_prefill(tb, model, long_prompts[0]) for _ in range(3))
        decode = {rows: decode_rate(tb, model, long_prompts[:rows], args.decode_steps) for rows in (1, 8)}
        answers = greedy_answers(tb, model, tokenizer, questions(args.questions), args.answer_tokens)
    return {"variant": name, "threads": torch.get_num_threads(), "prefill_ms": prefill_ms,
            "prompt_tokens": len(long_prompts[0]), "decode_b1": decode[1], "decode_b8": decode[8],
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_now_mb": rss_now_mb(),
            "answers": answers,
            "texts": [tokenizer.decode(answer, skip_special_tokens=True) for answer in answers[:3]],
            "questions": questions(3)}


def rss_now_mb() -> float:
    """Resident memory right now (the peak above includes the transient of loading and quantizing)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def apply_variant(model, name: str):
    """The model with ``name``'s weight format (in place)."""
    from inference.backends.transformers_backend import quantize, release_weights_file

    if name in ("fp32", "bf16"):
        return model
    return release_weights_file(quantize(model, name, "cpu", inplace=True))  # as load_model does


def time_prefill(tb, model, prompt: list[int]) -> float:
    started = time.perf_counter()
    tb.prefill(model, [prompt], "cpu")
    return (time.perf_counter() - started) * 1000


def decode_rate(tb, model, prompts: list[list[int]], steps: int) -> float:
    """Tokens/s of the engine's batched decode step over rows with these prompts (median step)."""
    logits, batch = tb.prefill(model, prompts, "cpu")
    tb.set_next_tokens(batch, logits.argmax(-1).tolist(), "cpu")
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        tb.set_next_tokens(batch, tb.decode_step(model, batch, "cpu").argmax(-1).tolist(), "cpu")
        times.append(time.perf_counter() - started)
    return len(prompts) / statistics.median(times[1:])


def questions(count: int) -> list[str]:
    lines = QUESTIONS_FILE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()][:count]


def greedy_answers(tb, model, tokenizer, texts: list[str], max_new_tokens: int, rows: int = 10) -> list[list[int]]:
    """Greedy answers through the engine's batched path (EOS ends an answer; it is not included)."""
    eos = tb.eos_token_ids(model, tokenizer)
    answers = []
    for start in range(0, len(texts), rows):
        prompts = [tb.encode_chat(tokenizer, ({"role": "system", "content": SYSTEM}, {"role": "user", "content": text}))
                   for text in texts[start:start + rows]]
        logits, batch = tb.prefill(model, prompts, "cpu")
        generated = [[] for _ in prompts]
        for _ in range(max_new_tokens):
            tokens = logits.argmax(-1).tolist()
            for answer, token in zip(generated, tokens, strict=True):
                if not (answer and answer[-1] in eos) and len(answer) < max_new_tokens:
                    answer.append(token)
            if all(answer and answer[-1] in eos for answer in generated):
                break
            tb.set_next_tokens(batch, tokens, "cpu")
            logits = tb.decode_step(model, batch, "cpu")
        answers += [[token for token in answer if token not in eos] for answer in generated]
    return answers


def agreement(reference: list[list[int]], answers: list[list[int]]) -> tuple[int, float]:
    """(identical answers, mean index of the first differing token — the answer's length when identical)."""
    same, first = 0, []
    for ref, other in zip(reference, answers, strict=True):
        same += ref == other
        first.append(next((i for i, (a, b) in enumerate(zip(ref, other, strict=False)) if a != b), min(len(ref), len(other))))
    return same, statistics.mean(first)


def format_report(results: list[dict]) -> str:
    reference = results[0]
    lines = ["| variant | prefill ~300 tok ms | decode tok/s batch 1 | decode tok/s batch 8 | peak / final RSS MB | "
             "greedy answers = fp32 | first differing token (mean) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        same, first = agreement(reference["answers"], result["answers"])
        lines.append(f"| {result['variant']} | {result['prefill_ms']:.0f} | {result['decode_b1']:.1f} | "
                     f"{result['decode_b8']:.1f} | {result['rss_mb']:.0f} / {result.get('rss_now_mb', 0):.0f} | "
                     f"{same}/{len(result['answers'])} | "
                     f"{first:.1f} |")
    mean_length = statistics.mean(len(answer) for answer in reference["answers"])
    lines.append(f"\n{reference['threads']} torch thread(s); {reference['prompt_tokens']}-token prompt; fp32 answers "
                 f"average {mean_length:.1f} tokens. Example answers:")
    for index, question in enumerate(reference["questions"]):
        lines.append(f"\nQ: {question}")
        lines += [f"- {result['variant']}: {result['texts'][index]!r}" for result in results]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
