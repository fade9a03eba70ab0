"""The lock files agree with pyproject.toml.

``make install`` installs requirements.lock and requirements-nodeps.lock with ``--no-deps``, so a
dependency added to pyproject.toml without ``make lock`` would be silently missing, and one removed
would linger. These tests read the files only (no index, no network): every requirement of the
project and its dev extras is pinned by a version it accepts, every package the lock says comes
from pyproject.toml is still asked for there, and every pin is hashed.
"""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

FROM_PYPROJECT = "kefu (pyproject.toml)"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")


@dataclass(frozen=True)
class Pin:
    """One package of a lock file: its version, whether it is hashed, and who asked for it."""

    name: str
    version: Version
    hashed: bool
    via: frozenset[str]


def lock_pins(path: Path) -> dict[str, Pin]:
    """The pins of a uv/pip-tools requirements file, keyed by canonical name."""
    pins: dict[str, Pin] = {}
    blocks = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    for block in blocks:
        match = PIN.match(block)
        if not match:
            continue
        via = {line.strip("# ").removeprefix("via ").strip() for line in block.splitlines() if line.lstrip().startswith("#")}
        name = canonicalize_name(match["name"])
        pins[name] = Pin(name, Version(match["version"]), "--hash=sha256:" in block, frozenset(via - {"via", ""}))
    return pins


def project_requirements() -> list[Requirement]:
    """pyproject.toml's dependencies and dev extras that apply on this interpreter."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"] + project["optional-dependencies"]["dev"]]
    return [requirement for requirement in requirements if requirement.marker is None or requirement.marker.evaluate()]


def makefile_nodeps_pins() -> list[Requirement]:
    match = re.search(r"^NODEPS_PINS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile names the packages installed without their dependencies (NODEPS_PINS)"
    return [Requirement(word) for word in match[1].split()]


@pytest.fixture(scope="module")
def locked() -> dict[str, Pin]:
    return lock_pins(ROOT / "requirements.lock")


def test_every_project_requirement_is_pinned_by_a_version_it_accepts(locked):
    # given the project's requirements, when each is looked up in the lock
    missing = [str(r) for r in project_requirements() if canonicalize_name(r.name) not in locked]
    refused = [f"{r} (locked {locked[canonicalize_name(r.name)].version})" for r in project_requirements()
               if canonicalize_name(r.name) in locked
               and not r.specifier.contains(locked[canonicalize_name(r.name)].version, prereleases=True)]
    # then each is there at a version its specifier accepts
    assert not missing, f"not in requirements.lock, run `make lock`: {missing}"
    assert not refused, f"requirements.lock pins versions pyproject.toml refuses, run `make lock`: {refused}"


def test_the_lock_asks_for_nothing_pyproject_dropped(locked):
    # given the packages the lock says pyproject.toml asked for
    direct = {name for name, pin in locked.items() if FROM_PYPROJECT in pin.via}
    # when compared with what pyproject.toml asks for now
    wanted = {canonicalize_name(r.name) for r in project_requirements()}
    # then they are the same packages
    assert direct - wanted == set(), f"requirements.lock still pins dropped requirements, run `make lock`: {direct - wanted}"
    assert wanted - direct == set(), f"requirements.lock does not list these as direct, run `make lock`: {wanted - direct}"


def test_every_pin_is_hashed(locked):
    nodeps = lock_pins(ROOT / "requirements-nodeps.lock")
    unhashed = [name for name, pin in (locked | nodeps).items() if not pin.hashed]
    assert locked and nodeps
    assert not unhashed, f"pins without a hash: {unhashed}"


def test_torch_is_locked_to_its_cpu_build(locked):
    # an unpinned torch pulls a multi-GB CUDA build; the lock holds the CPU wheel on local disk
    assert locked["torch"].version.local == "cpu"


def test_the_nodeps_lock_holds_exactly_the_makefile_pins():
    # given the packages the Makefile installs without their dependencies
    wanted = makefile_nodeps_pins()
    # when the nodeps lock is read
    pins = lock_pins(ROOT / "requirements-nodeps.lock")
    # then it pins exactly those, at the versions named
    assert set(pins) == {canonicalize_name(r.name) for r in wanted}, "run `make lock`"
    for requirement in wanted:
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)].version), "run `make lock`"
