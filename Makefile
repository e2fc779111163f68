# Shipway — every target sets itself up; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REPO   ?= $(CURDIR)
HOST   ?= 127.0.0.1
PORT   ?= 8765
EVAL_VENV  := .venv-eval
EVAL_STAMP := $(EVAL_VENV)/.installed
INSPECTOR_DIR   := tests/inspector
INSPECTOR_STAMP := $(INSPECTOR_DIR)/node_modules/.installed
PYTEST_ARGS ?=

.PHONY: help install eval-install system-deps run demo test eval lint format bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Shipway needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet 'torch==2.13.0'
	$(BIN)/pip install --quiet -e '.[test,dev,bench,embed]'
	@touch $@

install: $(STAMP) ## Create .venv and install Shipway with its test, dev and embedding extras

# deepeval pins click<8.4, which the embedding extra cannot use: it gets a virtualenv of its own.
$(EVAL_STAMP): pyproject.toml
	$(PYTHON) -m venv $(EVAL_VENV)
	$(EVAL_VENV)/bin/pip install --quiet --upgrade pip
	$(EVAL_VENV)/bin/pip install --quiet -e '.[eval]'
	@touch $@

eval-install: $(EVAL_STAMP) ## Create .venv-eval with deepeval for the agent evaluation

system-deps: ## Install the system tools the tests use (git, bubblewrap, Node/npm) when root and missing
	@bash scripts/system-deps.sh

$(INSPECTOR_STAMP): $(INSPECTOR_DIR)/package.json $(INSPECTOR_DIR)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(INSPECTOR_DIR) --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the MCP Inspector test will be skipped"; fi

run: install ## Serve REPO (default: this directory) over streamable HTTP on HOST:PORT
	$(BIN)/shipway serve --http --repo "$(REPO)" --host $(HOST) --port $(PORT)

demo: install system-deps ## Replay the whole agent loop on a copy of examples/hello-cli (no model needed)
	$(BIN)/shipway demo

test: install system-deps $(INSPECTOR_STAMP) $(EVAL_STAMP) ## Run the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

eval: install system-deps $(EVAL_STAMP) ## Evaluate the agents on examples/golden with SHIPWAY_MODEL (REPLAY=1: recorded scripts)
	$(EVAL_VENV)/bin/python -m bench.agent_eval $(if $(REPLAY),--replay)

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## Run the benchmarks (printed, not asserted)
	$(BIN)/python -m bench.mcp_latency
	$(BIN)/python -m bench.mcp_load
	$(BIN)/python -m bench.sandbox
	$(BIN)/python -m bench.test_selection
	$(BIN)/python -m bench.queue
	@if [ -d "$$MIRRORS" ]; then $(BIN)/python -m bench.edit_robustness; \
	else echo "bench.edit_robustness skipped: set MIRRORS (see ../shared/bench/README.md)"; fi

clean: ## Remove the virtualenvs, node_modules and caches
	rm -rf $(VENV) $(EVAL_VENV) $(INSPECTOR_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache
