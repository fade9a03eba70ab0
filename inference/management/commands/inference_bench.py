"""``python manage.py inference_bench --concurrency 1,4,8``: TTFT and tokens/s of the engine vs ``generate``.

See :mod:`inference.benchmark` for what is measured. Model, dtype and quantization default to
the settings and can be overridden to compare (``--dtype bfloat16``, ``--quantization fp16-weight``,
``--prefill-budget 128``). The weight formats' answer quality: ``bench/inference_quant.py``.
"""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.backends.transformers_backend import load_model
from inference.benchmark import format_table, quantization_agreement, run_benchmark
from inference.config import engine_config
from kefu import compute


class Command(BaseCommand):
    help = "Benchmark the batching engine (TTFT p50/p95, aggregate and per-stream tok/s) against plain generate."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--concurrency", default="1,4,8", help="comma-separated concurrent request counts")
        parser.add_argument("--rounds", type=int, default=2, help="waves per concurrency level")
        parser.add_argument("--load", choices=("wave", "sustained", "both"), default="both",
                            help="wave: C requests at once; sustained: C closed-loop clients (default: both)")
        parser.add_argument("--requests-per-client", type=int, default=4,
                            help="requests each sustained client sends back to back")
        parser.add_argument("--prompt-tokens", type=int, default=300)
        parser.add_argument("--max-new-tokens", type=int, default=64)
        parser.add_argument("--baseline-requests", type=int, default=3, help="0 skips the generate baseline")
        parser.add_argument("--model", default=None)
        parser.add_argument("--dtype", default=None)
        parser.add_argument("--quantization", default=None)
        parser.add_argument("--max-batch", type=int, default=None)
        parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        parser.add_argument("--prefill-budget", type=int, default=None,
                            help="prompt tokens prefilled per engine pass (longer prompts are chunked)")
        parser.add_argument("--prefix-cache", type=int, default=None, metavar="ENTRIES",
                            help="system prompts whose keys/values the engine keeps (0 = prefix cache off)")
        parser.add_argument("--agreement", default=None, metavar="METHOD",
                            help="instead of timing: compare greedy answers of METHOD (int8) with fp32")

    def handle(self, *args, **options) -> None:
        try:
            levels = [int(level) for level in options["concurrency"].split(",") if level.strip()]
        except ValueError as exc:
            raise CommandError(f"--concurrency must be integers like 1,4,8: {exc}") from exc
        if options["requests_per_client"] < 1 or options["rounds"] < 1:
            raise CommandError("--rounds and --requests-per-client must be at least 1")
        config = engine_config()
        overrides = {name: options[key] for name, key in (("model", "model"), ("dtype", "dtype"),
                                                          ("quantization", "quantization"),
                                                          ("num_threads", "threads"),
                                                          ("prefill_token_budget", "prefill_budget"),
                                                          ("prefix_cache_entries", "prefix_cache"))
                     if options[key] is not None}
        config = replace(config, backend="transformers", **overrides,
                         max_batch=options["max_batch"] or max(levels + [config.max_batch]))
        if options["agreement"]:
            loaded = compute.call(load_model, replace(config, quantization="none", dtype="float32"),
                                  models_dir=settings.KEFU_DATA_DIR / "models")
            self.stdout.write(compute.call(quantization_agreement, loaded, options["agreement"], prompts=8,
                                           max_new_tokens=options["max_new_tokens"]))
            return
        rows, baseline = run_benchmark(
            config, models_dir=settings.KEFU_DATA_DIR / "models", concurrency=levels, rounds=options["rounds"],
            prompt_tokens=options["prompt_tokens"], max_new_tokens=options["max_new_tokens"],
            baseline_requests=options["baseline_requests"],
            shapes=("wave", "sustained") if options["load"] == "both" else (options["load"],),
            requests_per_client=options["requests_per_client"], out=lambda line: self.stderr.write(line),
        )
        self.stdout.write(format_table(rows, baseline))
