"""Run every benchmark in bench/ in turn and print their tables (``make bench``).

Each benchmark is its own script with its own baseline measured in the same
process; this runner only sequences them. Budget: the sum of the scripts' budgets
(each states its own in its docstring). Nothing here gates CI.
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[Path]:
    """Scripts with a ``__main__`` block; helper modules (e.g. kb_datasets.py) are not run."""
    return sorted(path for path in HERE.glob("*.py")
                  if path.name != "run_all.py" and '__name__ == "__main__"' in path.read_text())


def main(selected: list[str]) -> int:
    failures = 0
    for script in benchmarks():
        if selected and script.stem not in selected:
            continue
        print(f"\n=== {script.stem} ===", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        print(f"--- {script.stem}: exit {result.returncode} after {time.perf_counter() - started:.0f} s", flush=True)
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
