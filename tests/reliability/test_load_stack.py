"""The load stack (bench/load_core.Stack) cleans up after itself, also when it never got ready."""

from __future__ import annotations

import sys

import pytest

from bench import load_core

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_stack_that_never_gets_ready_leaves_no_process_behind(tmp_path, monkeypatch):
    # given a stack whose three processes start (stand-ins: sleepers) but never answer /readyz
    stack = load_core.Stack(load_core.StackConfig(database_url="sqlite://", redis_url="redis://", data_dir=tmp_path))
    monkeypatch.setattr(stack, "spawn", lambda name, command: load_core.Stack.spawn(stack, name, SLEEPER))

    def never_ready(timeout_s, *, base=""):
        raise TimeoutError("the stack was not ready")

    monkeypatch.setattr(stack, "wait_ready", never_ready)
    # when a test starts it as the load tests do
    with pytest.raises(TimeoutError), stack:
        pass
    # then every process it spawned was stopped: a leftover worker would take another test's tasks
    assert len(stack.children) == 3
    assert all(child.process.poll() is not None for child in stack.children)
