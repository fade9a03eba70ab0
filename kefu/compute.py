"""The one thread of a process that runs torch.

torch's CPU kernels run on OpenMP (libgomp). Every OS thread that runs a parallel kernel gets
its own team of OpenMP threads, and once a process holds more OpenMP threads than it has
CPUs, libgomp stops spinning between parallel regions and parks its threads on a futex
instead: each small kernel then pays a wake-up. On the 2-core machine this made a decode
step of SmolLM2 ~1.8x slower (31 ms on the thread that loaded the model, 55 ms on the
engine's own thread) and a 576x1536 matmul 4x slower (33 µs vs 130 µs) as soon as a second
thread had touched torch. Web request threads embedding queries beside the engine had the
same effect.

So every torch computation of a process runs here, on one thread: one-off jobs (load a
model, embed texts) through :func:`call`, and long-running loops (the generation engine's
decode steps) through :func:`add_loop`. Jobs run between loop passes, oldest first, so a
query embedding waits for at most one decode step.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
IDLE_WAIT_S = 0.5  # an idle compute thread re-checks its loops this often (they also wake it)
# Models load one at a time in a process: transformers' from_pretrained patches torch.nn.Module for
# the whole process while it builds a model on the meta device, so a module created meanwhile in
# another thread (the generator's CPU quantisation while the embedder loads) gets meta weights and
# fails with "Cannot copy out of meta tensor". The embedder (kb.embedding) and the generator
# (inference.runtime) both take it.
MODEL_LOAD_LOCK = threading.RLock()

Loop = Callable[[], bool]  # one pass of a long-running loop; False when it had nothing to do


class ComputeThread:
    """A single worker thread running queued jobs and, between them, registered loops."""

    def __init__(self, name: str = "kefu-compute"):
        self.name = name
        self._jobs: collections.deque[tuple[Future, Callable, tuple, dict]] = collections.deque()
        self._loops: list[Loop] = []
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn`` on the compute thread and return its result (inline when already there)."""
        if self.on_thread():
            return fn(*args, **kwargs)
        return self.submit(fn, *args, **kwargs).result()

    def submit(self, fn: Callable[..., T], *args, **kwargs) -> Future:
        future: Future = Future()
        with self._wakeup:
            self._jobs.append((future, fn, args, kwargs))
            self._ensure_started()
            self._wakeup.notify_all()
        return future

    def add_loop(self, loop: Loop) -> None:
        """Run ``loop()`` repeatedly while it reports work; it is called again after :meth:`wake`."""
        with self._wakeup:
            self._loops.append(loop)
            self._ensure_started()
            self._wakeup.notify_all()

    def remove_loop(self, loop: Loop) -> None:
        with self._wakeup:
            if loop in self._loops:
                self._loops.remove(loop)

    def wake(self) -> None:
        """New work for a loop: run its next pass now instead of after the idle wait."""
        with self._wakeup:
            self._wakeup.notify_all()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop after the current job or loop pass and wait for the thread (at interpreter exit: a daemon
        thread still inside a torch kernel while the runtime's static objects are destroyed aborts the process)."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def on_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _ensure_started(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            job = self._next_job()
            if job is not None:
                run_job(*job)
                continue
            busy = False
            for loop in list(self._loops):
                busy = run_loop_pass(loop) or busy
            if not busy:
                with self._wakeup:
                    if not self._jobs and not self._stopping:
                        self._wakeup.wait(IDLE_WAIT_S)

    def _next_job(self):
        with self._wakeup:
            return self._jobs.popleft() if self._jobs else None


def run_job(future: Future, fn: Callable, args: tuple, kwargs: dict) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - handed to the caller
        future.set_exception(exc)


def run_loop_pass(loop: Loop) -> bool:
    try:
        return bool(loop())
    except Exception:  # noqa: BLE001 - a loop handles its own errors; this keeps the thread alive
        log.exception("compute loop %r failed", loop)
        return False


def cpu_has_fast_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (AMX tiles or AVX512-BF16).

    oneDNN then runs bf16 matmuls natively (2-3x faster than fp32 here); without them bf16 is
    emulated and slower than fp32. torch only exposes the check privately: absent → False.
    """
    import torch  # lazy: importing the compute thread must not load torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    try:
        return any(check() for check in checks if check is not None)
    except RuntimeError:
        return False


_compute = ComputeThread()
atexit.register(_compute.shutdown)


def compute_thread() -> ComputeThread:
    """The process's compute thread."""
    return _compute


def call(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run ``fn(*args, **kwargs)`` on the process's compute thread."""
    return _compute.call(fn, *args, **kwargs)
