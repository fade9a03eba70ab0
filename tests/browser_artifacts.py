"""Where browser tests keep their screenshots: $KEFU_TEST_ARTIFACTS (default /tmp/kefu-artifacts), one folder
per test module, printed so a run's log says where to look. They are kept after the run, for people to open."""

from __future__ import annotations

import os
from pathlib import Path


def artifacts_dir(name: str) -> Path:
    """The folder ``name`` under the artifacts root, created; its path is printed (pytest -s, or the captured log)."""
    folder = Path(os.environ.get("KEFU_TEST_ARTIFACTS", "/tmp/kefu-artifacts")) / name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def screenshot(page, folder: Path, name: str) -> Path:
    """A full-page PNG of ``page`` as ``folder/name.png``; a blank or failed capture fails the test."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000, path
    return path
