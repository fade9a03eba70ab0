"""Turn environment variables into validated settings values.

Everything here runs while Django loads its settings, so it must be light (no
torch, no network) and must fail with a :class:`ConfigError` whose message is one
line a person can act on. ``manage.py``, ``kefu.asgi`` and ``kefu.celery`` turn that
error into a single line on stderr and exit status 2.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import environ


class ConfigError(Exception):
    """The environment describes a configuration Kefu cannot run with."""


POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgis"}
REDIS_SCHEMES = {"redis", "rediss", "unix"}


def data_dir(raw: str, default: Path) -> Path:
    """The data directory (indexes, converted models, SQLite file), created if missing."""
    path = Path(raw).expanduser().resolve() if raw else default.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"KEFU_DATA_DIR={path} cannot be created: {exc.strerror}") from exc
    return path


def database_from_url(url: str, data: Path, *, pool_size: int = 0) -> dict:
    """Django DATABASES['default'] from DATABASE_URL; SQLite in the data dir when unset. ``pool_size``: PostgreSQL
    connections this process keeps in a pool (psycopg_pool; 0: a connection per use)."""
    if not url:
        return sqlite_database(data / "kefu.sqlite3")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        config = environ.Env.db_url_config(url)
        return sqlite_database(Path(config["NAME"]))
    if scheme not in POSTGRES_SCHEMES:
        raise ConfigError(
            f"DATABASE_URL={redact(url)} is not understood: expected postgres://user@host:5432/name "
            "or sqlite:////absolute/path.sqlite3 (unset it to use SQLite in KEFU_DATA_DIR)"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL={redact(url)} has an invalid port") from exc
    name = parts.path.lstrip("/")
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigError(f"DATABASE_URL={redact(url)} names no host (expected postgres://user@host/name)")
    if not name:
        raise ConfigError(f"DATABASE_URL={redact(url)} names no database (expected postgres://user@host/name)")
    config = environ.Env.db_url_config(url)
    config["ENGINE"] = "django.db.backends.postgresql"
    config["PORT"] = port or ""
    config["CONN_MAX_AGE"] = 0  # async views run in threads; persistent connections leak per thread
    config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    if pool_size:
        # A closed connection goes back to the process's pool instead of ending its server process: a new
        # PostgreSQL connection (a forked backend, authentication) cost more than a cached ask's whole work.
        config["OPTIONS"]["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": 30}
    return config


def sqlite_database(path: Path) -> dict:
    """SQLite tuned for a web process plus background threads writing at once."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # A file, not memory, so worker subprocesses started by tests can open the test database;
        # one per test process, so concurrent test runs on one data dir never share it.
        "TEST": {"NAME": str(path.with_name(f"test_{os.getpid()}_{path.name}"))},
        "OPTIONS": {
            # WAL lets readers go on while one writer writes; IMMEDIATE takes the write lock at
            # BEGIN so two writers queue on the busy timeout instead of failing mid-transaction.
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def redis_url(url: str) -> str | None:
    """REDIS_URL validated; ``None`` means embedded mode."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(f"REDIS_URL={redact(url)} is not understood: expected redis://host:6379/0")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ConfigError(f"REDIS_URL={redact(url)} has an invalid port") from exc
    return url


def secret_key(value: str, data: Path, *, required: bool) -> str:
    """SECRET_KEY from the environment, or one generated once and kept in the data dir.

    The web process and the workers of a fresh data dir start together and all look for the file: it is
    written whole before it appears (:func:`secret_key_create`), so none reads it half-written. Once a
    process read an empty key from a file another had only just created, and served every request with
    a 500 ("The SECRET_KEY setting must not be empty").
    """
    if value:
        return value
    if required:
        raise ConfigError("SECRET_KEY is not set; production settings need it in the environment")
    path = data / "secret_key"
    if not path.exists():
        secret_key_create(path)
    key = path.read_text().strip()
    for _ in range(SECRET_KEY_WAITS):  # a volume without hard links: another process may be writing it
        if key:
            break
        time.sleep(0.1)
        key = path.read_text().strip()
    if not key:
        raise ConfigError(f"{path} is empty: delete it (a new key is generated) or set SECRET_KEY")
    return key


SECRET_KEY_WAITS = 20  # × 0.1 s for an empty key file to be written


def secret_key_create(path: Path) -> None:
    """A new key in a private temporary file, linked into place: the link fails if another process got there
    first, and then its complete file stands. On a volume without hard links (some network shares), the file
    is created exclusively and written at once; readers wait for its content (:func:`secret_key`)."""
    key = secrets.token_urlsafe(50)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process's complete key stands
        except OSError:
            exclusive_write(path, key)
    finally:
        os.unlink(temporary)


def exclusive_write(path: Path, text: str) -> None:
    """Create ``path`` (0600) with ``text`` unless it exists: another process's key then stands."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def positive_int(name: str, value: int, *, maximum: int | None = None) -> int:
    """An integer setting that must be ≥ 1 (and ≤ maximum when given)."""
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum else ""
        raise ConfigError(f"{name}={value} must be at least 1{bound}")
    return value


def embedding_models(raw: str) -> dict[str, str]:
    """``KEFU_EMBEDDING_MODELS``: ``name=/local/dir,name2=/dir2`` → {name: absolute dir}.

    Each directory must hold a sentence-transformers model (its config.json); a base names one of
    these in ``KnowledgeBase.embedding_model``. Names are plain words: ``tuned:`` is reserved.
    """
    models: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, directory = (piece.strip() for piece in item.partition("="))
        if not sep or not name or not directory:
            raise ConfigError(f"KEFU_EMBEDDING_MODELS: {item!r} is not name=/local/dir")
        if ":" in name or "/" in name or name in models:
            raise ConfigError(f"KEFU_EMBEDDING_MODELS: {name!r} is {'named twice' if name in models else 'not a plain name'}")
        path = Path(directory).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise ConfigError(f"KEFU_EMBEDDING_MODELS: {name}={path} is not a sentence-transformers directory")
        models[name] = str(path)
    return models


def redact(url: str) -> str:
    """The URL with its password replaced, safe to print."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
