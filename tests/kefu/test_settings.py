"""Settings: the environment picks the mode, the database and the model, with embedded defaults."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, subprocess_env

DUMP = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "mode": settings.KEFU_MODE,
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "cache": settings.CACHES["default"]["BACKEND"],
    "broker": settings.CELERY_BROKER_URL,
    "queues": [queue.name for queue in settings.CELERY_TASK_QUEUES],
    "acks_late": settings.CELERY_TASK_ACKS_LATE,
    "prefetch": settings.CELERY_WORKER_PREFETCH_MULTIPLIER,
    "reject_on_lost": settings.CELERY_TASK_REJECT_ON_WORKER_LOST,
    "ignore_result": settings.CELERY_TASK_IGNORE_RESULT,
    "visibility_timeout": settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"],
    "time_limit": settings.CELERY_TASK_TIME_LIMIT,
    "max_new_tokens": settings.KEFU_MAX_NEW_TOKENS,
    "secret_key_len": len(settings.SECRET_KEY),
    "data_dir": str(settings.KEFU_DATA_DIR),
}))
"""


def load_settings(tmp_path, **env) -> dict:
    base = {"REDIS_URL": None, "DATABASE_URL": None, "SECRET_KEY": None, "KEFU_DATA_DIR": str(tmp_path / "data"),
            "DJANGO_SETTINGS_MODULE": "kefu.settings"}
    result = subprocess.run([PYTHON, "-c", DUMP], cwd=ROOT, env=subprocess_env(**{**base, **env}),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_environment_gives_embedded_mode_with_sqlite_in_the_data_dir(tmp_path):
    # given no REDIS_URL and no DATABASE_URL / when settings load
    loaded = load_settings(tmp_path)
    # then Kefu runs embedded: SQLite in the data dir, local-memory cache, no broker
    assert loaded["mode"] == "embedded"
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["db_name"] == str(tmp_path / "data" / "kefu.sqlite3")
    assert loaded["cache"].endswith("LocMemCache")
    assert loaded["broker"] == "memory://"
    assert loaded["max_new_tokens"] == 512


def test_secret_key_is_generated_once_and_kept_in_the_data_dir(tmp_path):
    # given an empty data dir / when settings load twice
    first = load_settings(tmp_path)
    key_file = tmp_path / "data" / "secret_key"
    # then one key is written (private) and reused
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert first["secret_key_len"] == len(key_file.read_text().strip()) >= 50
    second_key = key_file.read_text()
    load_settings(tmp_path)
    assert key_file.read_text() == second_key


def test_redis_url_switches_to_service_mode_with_declared_queues(tmp_path):
    # given REDIS_URL and DATABASE_URL / when settings load
    loaded = load_settings(tmp_path, REDIS_URL="redis://127.0.0.1:6379/15",
                           DATABASE_URL="postgres://postgres@127.0.0.1:5432/kefu_test")
    # then Celery, the cache and the database use the services
    assert loaded["mode"] == "service"
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert loaded["db_name"] == "kefu_test"
    assert loaded["cache"].endswith("RedisCache")
    assert loaded["broker"] == "redis://127.0.0.1:6379/15"
    assert {"ingest", "inference"} <= set(loaded["queues"])


def test_celery_is_set_for_long_gpu_tasks(tmp_path):
    # given the default settings / when loaded
    loaded = load_settings(tmp_path, KEFU_GENERATION_TIMEOUT="600")
    # then late acks, one message at a time, redelivery on worker loss, no results kept,
    # and a visibility timeout longer than the longest task
    assert loaded["acks_late"] and loaded["reject_on_lost"] and loaded["ignore_result"]
    assert loaded["prefetch"] == 1
    assert loaded["visibility_timeout"] > loaded["time_limit"] > 600


@pytest.mark.parametrize("value", ["0", "40000", "-3"])
def test_out_of_range_max_new_tokens_is_refused(tmp_path, value):
    # given KEFU_MAX_NEW_TOKENS out of range / when settings load / then one clear line
    result = subprocess.run([PYTHON, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=subprocess_env(KEFU_MAX_NEW_TOKENS=value, KEFU_DATA_DIR=str(tmp_path)))
    assert result.returncode == 2
    assert result.stderr.strip() == f"kefu: configuration error: KEFU_MAX_NEW_TOKENS={value} must be at least 1 and at most 32768"


def _key_in(directory: str, barrier, keys) -> None:
    from kefu.config import secret_key

    barrier.wait()
    keys.put(secret_key("", Path(directory), required=False))


def test_processes_starting_together_on_a_fresh_data_dir_read_one_whole_key(tmp_path):
    # given a web process and workers starting at the same moment on a fresh data dir
    import multiprocessing

    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(8), context.Queue()
    processes = [context.Process(target=_key_in, args=(str(tmp_path), barrier, queue)) for _ in range(8)]
    for process in processes:
        process.start()
    keys = [queue.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    # then every one reads the same complete key, and no temporary file is left behind
    assert len(set(keys)) == 1 and len(keys[0]) >= 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_a_process_that_loses_the_race_reads_the_winners_key(tmp_path, monkeypatch):
    # given another process links its key into place between this one's check and its own link
    from kefu import config

    real_link = os.link

    def other_process_first(source, destination):
        (tmp_path / "other").write_text("the-other-process-key")
        real_link(tmp_path / "other", destination)
        raise FileExistsError(destination)

    monkeypatch.setattr(config.os, "link", other_process_first)
    # then this process reads the other's key, not its own
    assert config.secret_key("", tmp_path, required=False) == "the-other-process-key"


def test_an_empty_key_file_is_a_configuration_error_naming_it(tmp_path, monkeypatch):
    from kefu import config

    monkeypatch.setattr(config, "SECRET_KEY_WAITS", 2)
    (tmp_path / "secret_key").write_text("")
    with pytest.raises(config.ConfigError, match="secret_key is empty"):
        config.secret_key("", tmp_path, required=False)


def test_on_a_volume_without_hard_links_the_key_is_created_exclusively(tmp_path, monkeypatch):
    # given a file system that refuses hard links (some network shares)
    from kefu import config

    def no_links(source, destination):
        raise PermissionError("hard links are not supported here")

    monkeypatch.setattr(config.os, "link", no_links)
    # when two processes look for the key one after the other, then both read the first one's whole key
    first = config.secret_key("", tmp_path, required=False)
    assert len(first) >= 50 and config.secret_key("", tmp_path, required=False) == first
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]
