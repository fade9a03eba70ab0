"""Test-only pause points, so fault tests can kill a process at an exact moment.

``KEFU_TEST_PAUSE_AT="index_files_written=60"`` makes a process sleep 60 s when it reaches
:func:`pause_point` ``("index_files_written")`` (after announcing it on stderr), which gives a
test time to SIGKILL it there. Unset — always, outside tests — a pause point costs one
environment lookup. Points: ``index_files_written`` (kb.indexing: a version's files are in
its temporary folder, not yet renamed or activated).
"""

from __future__ import annotations

import os
import sys
import time

ENV = "KEFU_TEST_PAUSE_AT"


def pause_point(name: str) -> None:
    """Sleep here when KEFU_TEST_PAUSE_AT names this point."""
    point, _, seconds = os.environ.get(ENV, "").partition("=")
    if point != name:
        return
    sys.stderr.write(f"kefu: paused at {name} for {seconds or 60} s ({ENV})\n")
    sys.stderr.flush()
    time.sleep(float(seconds or 60))
