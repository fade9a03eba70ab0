"""Inference benchmark: the batching engine's TTFT and tokens/s vs sequential ``model.generate``.

    .venv/bin/python bench/inference_bench.py [--concurrency 1,4,8] [--dtype bfloat16] [--quantization int8]

A thin wrapper over ``python manage.py inference_bench`` (same arguments); the measurement
lives in ``inference/benchmark.py``. Budget: ~2-4 min and ~1 GB RSS on the 2-core CPU with
SmolLM2-135M at the defaults (1,4,8; 2 rounds; 300-token prompts; 64 new tokens).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("inference_bench", *sys.argv[1:])


if __name__ == "__main__":
    main()
