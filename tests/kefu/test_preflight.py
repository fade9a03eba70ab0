"""Bad configuration stops every process at start with one clear line, never a traceback."""

import subprocess

import pytest

from tests.conftest import PYTHON, ROOT, free_port, subprocess_env


def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def run(command: list[str], tmp_path, **env) -> subprocess.CompletedProcess:
    base = {"KEFU_DATA_DIR": str(tmp_path / "data"), "REDIS_URL": None, "DATABASE_URL": None, "KEFU_WARMUP": "0"}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=subprocess_env(**{**base, **env}))


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if "configuration error" in line]


SERVE = [PYTHON, "manage.py", "serve", "--port", "0"]
UVICORN = [PYTHON, "-m", "uvicorn", "kefu.asgi:application", "--port", "0"]
WORKER = [PYTHON, "-m", "celery", "-A", "kefu", "worker", "-Q", "ingest", "-P", "solo"]


@pytest.mark.parametrize("command", [SERVE, UVICORN, WORKER], ids=["serve", "uvicorn", "worker"])
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "mysql//nonsense"}, "DATABASE_URL=mysql//nonsense is not understood"),
        ({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432"}, "names no database"),
        ({"KEFU_MODEL": "no-such-model"}, "KEFU_MODEL='no-such-model' is neither a bundled model"),
        ({"KEFU_EMBEDDING_MODEL": "/nowhere"}, "KEFU_EMBEDDING_MODEL='/nowhere' is neither"),
        ({"KEFU_MODEL_BACKEND": "llamafile"}, "KEFU_MODEL_BACKEND='llamafile' is unknown"),
    ],
    ids=["malformed-db-url", "db-url-without-name", "unknown-model", "unknown-embedder", "unknown-backend"],
)
def test_bad_configuration_fails_with_one_line(tmp_path, command, env, expected):
    # given a bad setting / when a process starts
    result = run(command, tmp_path, **env)
    # then it exits 2 with exactly one line saying what is wrong, and no traceback
    assert result.returncode == 2, result.stderr[-2000:]
    lines = error_lines(result)
    assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [SERVE, UVICORN, WORKER], ids=["serve", "uvicorn", "worker"])
def test_redis_configured_but_down_fails_with_one_line(tmp_path, command):
    # given REDIS_URL pointing at a port nothing listens on / when a process starts
    url = f"redis://127.0.0.1:{closed_port()}/0"
    result = run(command, tmp_path, REDIS_URL=url)
    # then one line names Redis, the URL and what to do
    assert result.returncode == 2, result.stderr[-2000:]
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr[-2000:]
    assert f"REDIS_URL is set but Redis does not answer ({url}" in lines[0]
    assert "unset REDIS_URL to run embedded" in lines[0]


def test_unreachable_postgres_fails_with_one_line(tmp_path):
    # given a PostgreSQL URL on a closed port / when the server starts
    result = run(SERVE, tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/kefu")
    # then after its retries it says the database is not reachable, in one line
    assert result.returncode == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "the database is not reachable (postgresql:" in lines[0]


def test_production_settings_require_a_secret_key(tmp_path):
    # given production settings without SECRET_KEY / when a command runs / then one line
    result = run([PYTHON, "manage.py", "check"], tmp_path, DJANGO_SETTINGS_MODULE="kefu.settings.production",
                 SECRET_KEY=None, ALLOWED_HOSTS="kefu.example.com")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "kefu: configuration error: SECRET_KEY is not set; production settings need it in the environment")


def test_production_settings_pass_the_deploy_check(tmp_path):
    # given production settings with a strong key and hosts / when `check --deploy` runs
    result = run([PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path,
                 DJANGO_SETTINGS_MODULE="kefu.settings.production",
                 SECRET_KEY="k" * 20 + "-Zq8#x!pL0v@e3R$tY7uW2sA9dF4gH6jK1", ALLOWED_HOSTS="kefu.example.com")
    # then Django finds nothing to warn about
    assert result.returncode == 0, result.stderr
