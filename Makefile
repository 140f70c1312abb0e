# The README's commands. `make test` is what CI runs.
SHELL := /bin/bash
# uv from PATH, else installed from PyPI by scripts/bootstrap (a fresh machine has none).
UV ?= $(shell scripts/bootstrap uv)
# ... and on PATH for what the tests and benchmarks start (pip --user puts it off PATH).
export PATH := $(dir $(UV)):$(PATH)
PY := $(UV) run --frozen

.PHONY: install run down test lint bench stack-up stack-down demo

## install: what a fresh machine lacks (apt packages when root, uv, Go), then the Python deps
install:
	scripts/bootstrap
	@# Bytecode once, here: where PYTHONDONTWRITEBYTECODE is set, every process otherwise
	@# compiles every module it imports (5.7 s of CPU to import the router, 2.2 s with it).
	$(UV) sync --frozen --compile-bytecode
	$(PY) python -m compileall -q -j 0 shared services bench tests

stack-up: install
	scripts/stack up

stack-down:
	scripts/stack down

## run: the stack, every service, a demo configuration; prints how to send and watch alerts
run: install
	scripts/run up

## down: stop the services and the stack; leaves no process behind
down:
	-scripts/run down
	scripts/stack down

lint: install
	$(PY) ruff check .
	$(PY) ruff format --check shared services tests bench
	$(PY) mypy

## test: install, stack up, lint, type-check, every test against the real stack, stack down
test: install
	@set -o pipefail; mkdir -p .stack; scripts/stack up | tee .stack/env.sh; \
	scripts/stack alertmanager >/dev/null; \
	source .stack/env.sh; \
	rc=0; \
	$(MAKE) --no-print-directory lint || rc=$$?; \
	if [ $$rc -eq 0 ]; then $(PY) pytest || rc=$$?; fi; \
	scripts/stack down; \
	exit $$rc

## bench: every benchmark on the local stack (Redis database 15: a `make run` demo is untouched)
bench: stack-up
	@source <(scripts/stack env); $(PY) python -m bench
