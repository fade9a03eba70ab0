"""A background job of the kb app run in this process from the command line, its progress bar polled."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from kb.models import TuningRun


def run_with_progress(stdout, run: TuningRun, job: Callable[..., object], **kwargs) -> TuningRun:
    """``job(run_id=run.pk, **kwargs)`` in a thread of this process; its saved progress is drawn on
    ``stdout`` (a command's) every second until it ends. Returns the run as it finished."""
    worker = threading.Thread(target=job, kwargs={"run_id": run.pk, **kwargs}, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(1.0)
        run.refresh_from_db()
        stdout.write(f"\r[{run.progress:3d}%] {run.stage[:60]:<60}", ending="")
        sys.stdout.flush()
    run.refresh_from_db()
    stdout.write("")
    return run
