"""Tuning with the lower layers frozen against every layer trained, in one run: 2-fold gain and time of each.

    KEFU_DATA_DIR=/tmp/kefu-bench .venv/bin/python manage.py demo_setup --no-tune
    KEFU_DATA_DIR=/tmp/kefu-bench .venv/bin/python bench/tune_frozen.py demo-zaragoza [--shares 0,0.5]

Each configuration measures the base's 2-fold held-out nDCG@10 gain as ``kb_tune --measure-only`` does (the
shipped model's measurement, two fold trainings and their measurements; nothing is adopted, the base is left as
it was). The baseline is the configuration before session 19: every layer trained at learning rate 3e-5; the
others are the shares given, at the default learning rate. Prints a markdown table; runs on one torch thread
unless ``KEFU_BENCH_THREADS`` says otherwise. Budget: ~3 min (half frozen) + ~7 min (all layers) for the demo
base on all-mpnet-base-v2 on one Zen 5 thread; about a fifth of that on all-MiniLM-L6-v2.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")

BASELINE = {"frozen_share": 0.0, "learning_rate": 3e-5}  # session 18's tuning


def main() -> None:
    import django

    django.setup()
    import torch

    torch.set_num_threads(int(os.environ.get("KEFU_BENCH_THREADS", "1")))
    from kb.embedding import knowledge_base_model
    from kb.selectors import knowledge_base_get
    from kb.tuning import TuningConfig, knowledge_base_tune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kb")
    parser.add_argument("--shares", default=str(TuningConfig.frozen_share),
                        help="comma-separated frozen shares to measure besides the baseline")
    args = parser.parse_args()
    kb = knowledge_base_get(ref=args.kb)
    configs = [("every layer, lr 3e-5 (baseline)", replace(TuningConfig(), **BASELINE))]
    configs += [(f"lower {float(share):.0%} frozen, lr {TuningConfig.learning_rate:g}",
                 replace(TuningConfig(), frozen_share=float(share))) for share in args.shares.split(",") if share]
    print(f"{kb.name} on {knowledge_base_model(kb)}; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch thread(s)\n", flush=True)
    print("| tuning | 2-fold gain | fold 1 | fold 2 | seconds |\n|---|---|---|---|---|", flush=True)
    for label, config in configs:
        started = time.perf_counter()
        outcome = knowledge_base_tune(knowledge_base=kb, config=config, adopt=False)
        seconds = time.perf_counter() - started
        folds = [f"{fold.before:.3f} → {fold.after:.3f}" for fold in outcome.folds] or ["-", "-"]
        print(f"| {label} | {outcome.gain:+.3f} | {folds[0]} | {folds[1]} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
