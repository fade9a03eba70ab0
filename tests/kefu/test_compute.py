"""The compute thread: every torch computation of a process runs on one OS thread (kefu.compute)."""

from __future__ import annotations

import threading

import pytest

from kefu.compute import ComputeThread


def test_call_runs_on_the_compute_thread_and_returns_its_result():
    # given a compute thread
    compute = ComputeThread(name="test-compute")
    # when a function is called through it
    name = compute.call(lambda: threading.current_thread().name)
    # then it ran there, and the caller got its result
    assert name == "test-compute"


def test_call_raises_the_jobs_exception_in_the_caller():
    compute = ComputeThread(name="test-compute")
    with pytest.raises(ZeroDivisionError):
        compute.call(lambda: 1 / 0)
    # and the thread keeps serving later jobs
    assert compute.call(lambda: 2 + 2) == 4


def test_a_call_from_the_compute_thread_runs_inline():
    # given a job that itself calls through the compute thread (it would wait for itself if queued)
    compute = ComputeThread(name="test-compute")
    # when it runs
    result = compute.call(lambda: compute.call(lambda: "inner"))
    # then it completes
    assert result == "inner"


def test_jobs_run_between_the_passes_of_a_busy_loop():
    # given a loop that always has work (an engine decoding a long answer)
    compute = ComputeThread(name="test-compute")
    passes = []
    stop = threading.Event()

    def loop() -> bool:
        passes.append(1)
        return not stop.is_set()

    compute.add_loop(loop)
    try:
        # when one-off jobs are submitted meanwhile
        results = [compute.call(lambda i=i: (i, len(passes))) for i in range(5)]
        # then each ran, between passes of the loop (the loop is not starved and does not starve them)
        assert [i for i, _ in results] == list(range(5))
        assert results[-1][1] > results[0][1]
    finally:
        stop.set()
        compute.remove_loop(loop)


def test_a_loop_that_raises_does_not_kill_the_thread():
    compute = ComputeThread(name="test-compute")
    calls = []

    def broken() -> bool:
        calls.append(1)
        raise RuntimeError("boom")

    compute.add_loop(broken)
    compute.wake()
    assert compute.call(lambda: "alive") == "alive"
    compute.remove_loop(broken)
    assert calls


def test_shutdown_stops_a_busy_loop_and_a_later_call_starts_the_thread_again():
    # given a compute thread running a loop that always has work
    compute = ComputeThread(name="test-compute")

    def busy() -> bool:
        return True

    compute.add_loop(busy)
    first = compute._thread
    # when it is shut down (as at interpreter exit)
    compute.shutdown(timeout=5)
    # then its thread has ended
    assert not first.is_alive()
    # and a later job gets a new thread
    compute.remove_loop(busy)
    assert compute.call(lambda: threading.current_thread().name) == "test-compute"
