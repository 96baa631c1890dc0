# Two commands on a fresh machine: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
# milvus-lite 3.2.2, a gRPC-only Milvus server for the tests, needs pymilvus 3 beside it, and
# the console's pymilvus 2.4 (the newest that reaches Milvus 2.3.5) cannot share a venv with it.
LITE_VENV := .venv-lite
LITE_STAMP := $(LITE_VENV)/.installed

.PHONY: install demo test lint format migrate run worker

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

$(LITE_STAMP): requirements-lite.txt
	rm -rf $(LITE_VENV)
	$(PYTHON) -m venv $(LITE_VENV)
	$(LITE_VENV)/bin/python -m pip install --quiet -r requirements-lite.txt
	touch $@

install: $(STAMP) $(LITE_STAMP)

demo: $(STAMP)
	$(BIN)/python manage.py rundemo

test: $(STAMP) $(LITE_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy upserts console bench

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP)
	$(BIN)/python manage.py migrate

run: $(STAMP)
	$(BIN)/python manage.py runserver

worker: $(STAMP)
	$(BIN)/celery -A console worker --loglevel=INFO
