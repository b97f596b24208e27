# streamproc: `make help` lists the targets. Every target installs what it needs first.
SHELL := bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STACK := stack/stack.sh

.DEFAULT_GOAL := help
.PHONY: help install hooks up down status reset topics test test-unit test-integration lint typecheck imports check check-fast demo bench faults docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(BIN)/streamproc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/streamproc ## create .venv with streamproc and its dev tools

hooks: install ## run ruff, mypy and import-linter before each commit (.pre-commit-config.yaml)
	$(BIN)/pre-commit install

up: ## start Kafka (KRaft) and Redis on 127.0.0.1, installing them if needed
	@$(STACK) up

down: ## stop the Kafka and Redis this repo started (nothing else)
	@$(STACK) down

status: ## is the local stack running?
	@$(STACK) status

reset: ## stop the stack and delete its data (topics, offsets)
	@$(STACK) reset

topics: install up ## create or update the declared topics (topics/*.yaml)
	$(BIN)/streamproc topics apply

test: install up ## run every test: unit, component, contract, integration (real Kafka + Redis); two fault cases again in the secure profile
	$(BIN)/pytest
	STREAMPROC_FAULTS_PROFILE=secure $(BIN)/pytest tests/faults -m secure_smoke

test-unit: install ## the tests that need no broker
	$(BIN)/pytest tests/unit tests/component tests/contract

test-integration: install up ## the tests against the real Kafka broker and Redis server
	$(BIN)/pytest tests/integration

lint: install ## ruff check and ruff format --check
	$(BIN)/ruff check streamproc tests benchmarks examples
	$(BIN)/ruff format --check streamproc tests benchmarks examples

typecheck: install ## mypy --strict on streamproc, tests, benchmarks and examples
	$(BIN)/mypy

imports: install ## import-linter layer contracts
	$(BIN)/lint-imports

check: lint typecheck imports test ## everything that must pass before a commit

check-fast: lint typecheck imports ## no stack, under a minute: lint, types, contracts, unit and component tests not marked slow
	$(BIN)/pytest -q tests/unit tests/component -m "not slow"

demo: install up ## the reference scenario end to end on the local stack, with a summary
	$(BIN)/streamproc demo --events $(or $(EVENTS),20000)

bench: topics ## benchmarks on the local stack (figures, not pass/fail); writes BENCHMARKS.md (SOAK_MINUTES=0 skips the soak)
	$(BIN)/python -m benchmarks.pipeline_bench --soak-minutes $(or $(SOAK_MINUTES),10)
	$(BIN)/python -m benchmarks.hotpath_bench
	$(BIN)/python -m benchmarks.serde_bench
	$(BIN)/python -m benchmarks.clean_worker_bench
	$(BIN)/python -m benchmarks.features_bench
	$(BIN)/python -m benchmarks.models_bench
	$(BIN)/python -m benchmarks.secure_bench
	$(BIN)/python -m benchmarks.poison_bench

faults: install ## the fault matrix (tests/faults) at 100,000 events and 3 seeds, on a broker and Redis of its own; writes FAULTS.md (PROFILE=secure: SASL_SSL and Redis TLS, FAULTS-secure.md); then the decode fuzz at 100,000 records
	STREAMPROC_FAULTS_SCALE=$(or $(EVENTS),100000) STREAMPROC_FAULTS_SEEDS=$(or $(SEEDS),3) \
	STREAMPROC_FAULTS_PROFILE=$(or $(PROFILE),plaintext) \
	STREAMPROC_FAULTS_REPORT=$(if $(filter secure,$(PROFILE)),FAULTS-secure.md,FAULTS.md) \
	$(BIN)/pytest tests/faults -o timeout=3600
	STREAMPROC_FUZZ_EXAMPLES=$(or $(FUZZ),100000) $(BIN)/pytest tests/unit/test_fuzz_decode.py

docs: install ## regenerate the generated docs (docs/configuration.md from the Settings class)
	$(BIN)/python -m streamproc.config.settings > docs/configuration.md.new
	mv docs/configuration.md.new docs/configuration.md

clean: ## remove the virtualenv and caches (not the stack: see reset)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
