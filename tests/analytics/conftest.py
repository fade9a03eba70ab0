"""Fixtures for the analytics tests: per-test data dir and cache, one embedder per session, a staff client."""

from __future__ import annotations

import os

import pytest

from tests.conftest import staff_member

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def analytics_data_dir(settings, tmp_path, isolated_cache):
    """Index files under a per-test temp dir, an empty cache of its own (isolated_cache), embedded mode, no warm-up."""
    from kb.indexing import forget_cached_indexes

    settings.KEFU_DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = tmp_path / "data" / "uploads"
    settings.KEFU_KB_RESUME_ON_START = False
    settings.KEFU_WARMUP = False
    settings.REDIS_URL = None
    settings.KEFU_MODE = "embedded"
    forget_cached_indexes()
    yield settings.KEFU_DATA_DIR
    forget_cached_indexes()


@pytest.fixture(scope="session")
def embedder():
    from kb.embedding import get_embedder

    return get_embedder()


@pytest.fixture
def staff_client(client, db):
    client.force_login(staff_member("sam", password="pw-sam-123"))
    return client
