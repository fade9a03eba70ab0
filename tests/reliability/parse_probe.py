"""Run by the memory tests in a child process: parse one upload as ingestion does, report peak RSS and time.

``python -m tests.reliability.parse_probe FILE NAME`` prints one JSON line: the outcome ("ok" with the
sections / FAQ rows found, or "refused" with the ParseError's sentence), the process's RSS before the
parse and its peak (MB, VmHWM), and the seconds the parse took.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def peak_mb() -> float:
    """This process's peak RSS. Linux's VmHWM belongs to the process's own memory map, made at exec; getrusage's
    ru_maxrss keeps the high-water mark of the image exec replaced — a fork of a 300 MB test runner started at
    300 MB — so it is the fallback only where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(path: str, name: str) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")
    django.setup()
    import kb.parsing.docx
    import kb.parsing.faq_sheet
    import kb.parsing.html
    import kb.parsing.pdf  # noqa: F401 - every parser's libraries loaded before the baseline
    from kb.parsing import ParseError, parse_document

    with open(path, "rb") as source:
        data = source.read()
    before, started = peak_mb(), time.monotonic()
    try:
        parsed = parse_document(data, name)
        outcome = {"outcome": "ok", "sections": len(parsed.sections), "faq_rows": len(parsed.faq_rows)}
    except ParseError as error:
        outcome = {"outcome": "refused", "message": str(error)}
    print(json.dumps({**outcome, "before_mb": round(before, 1), "peak_mb": round(peak_mb(), 1),
                      "seconds": round(time.monotonic() - started, 2)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
