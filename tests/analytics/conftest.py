"""Fixtures for the analytics tests: per-test data dir and cache, one embedder per session, a staff client."""

from __future__ import annotations

import os

import pytest

from tests.conftest import staff_member

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def analytics_data_dir(settings, data_dir, isolated_cache):
    """The shared per-test data dir (tests/conftest.py), an empty cache of its own (isolated_cache), embedded mode."""
    settings.REDIS_URL = None
    settings.KEFU_MODE = "embedded"
    return data_dir


@pytest.fixture
def staff_client(client, db):
    client.force_login(staff_member("sam", password="pw-sam-123"))
    return client
