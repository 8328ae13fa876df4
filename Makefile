# Self-bootstrapping: every target that needs the environment depends on $(STAMP),
# so `make test` and `make demo` work on a fresh clone with nothing installed.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is installed first and pinned, so nothing later pulls a CUDA build.
TORCH_SPEC ?= torch==2.13.0
WHEELS := $(wildcard /opt/wheels)
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q $(if $(WHEELS),--find-links $(WHEELS))
PYTEST_ARGS ?=

.PHONY: venv test lint type unit demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) $(TORCH_SPEC)
	$(PIP_INSTALL) -e '.[test,bench]' numpy
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

type: $(STAMP)
	$(BIN)/mypy --strict src

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint type unit

demo: $(STAMP)
	$(BIN)/python examples/demo.py

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist
