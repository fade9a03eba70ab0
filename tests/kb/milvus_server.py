"""Milvus Lite as a separate server process, for service-mode tests and the fault test."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(data: Path, port: int) -> subprocess.Popen:
    """Start ``python -m milvus_lite server`` and wait until its port answers (at most 60 s)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data), "--host", "127.0.0.1",
         "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"milvus_lite server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("milvus_lite server did not open its port within 60 s")


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(timeout=30)


@contextmanager
def milvus_lite_server(data: Path):
    port = free_port()
    process = start(data, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
