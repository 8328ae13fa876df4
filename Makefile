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
PYTEST_ARGS ?= -n 2
# The real-library corpus never downloads: tiny configs, random weights.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# torch wheels exist only for 3.11 here: the other versions run the torch-free tests
# (tests needing torch skip themselves). Versions not installed are skipped.
TORCH_FREE_PYTHONS ?= $(foreach v,3.10 3.12 3.13,$(firstword $(wildcard $(HOME)/.pyenv/versions/$(v).*/bin/python3) python$(v)))

.PHONY: venv test lint type unit pythons demo bench upstream clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) $(TORCH_SPEC)
	echo '$(TORCH_SPEC)' > $(VENV)/constraints.txt
	$(PIP_INSTALL) -c $(VENV)/constraints.txt -e '.[test,bench,real]' numpy
	# torchvision's only wheel here is a CUDA build that breaks CPU torch.
	$(BIN)/python -m pip uninstall -y -q torchvision 2>/dev/null || true
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples fuzz upstream
	$(BIN)/ruff format --check src tests bench examples fuzz upstream

type: $(STAMP)
	$(BIN)/mypy --strict src

# The real suites' sources, for the slice tests/upstream runs (make upstream runs them whole).
UPSTREAM_STAMP := .upstream/.fetched
$(UPSTREAM_STAMP): $(STAMP) upstream/suites.py upstream/fetch.py
	$(BIN)/python -m upstream fetch
	touch $(UPSTREAM_STAMP)

unit: $(STAMP) $(UPSTREAM_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

pythons:
	@for py in $(TORCH_FREE_PYTHONS); do \
	  if ! $$py -c pass >/dev/null 2>&1; then echo "pythons: $$py not installed, skipped"; continue; fi; \
	  env=.venv-$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  if [ ! -f $$env/.installed ] || [ pyproject.toml -nt $$env/.installed ]; then \
	    $$py -m venv $$env && $$env/bin/python -m pip install --disable-pip-version-check -q -e '.[test]' \
	      && touch $$env/.installed || exit 1; \
	  fi; \
	  echo "pythons: $$env"; \
	  $$env/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) || exit 1; \
	done

test: lint type unit pythons

demo: $(STAMP)
	$(BIN)/python examples/demo.py
	$(BIN)/python examples/gate.py

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Real libraries' own test suites (pinned sdists, fetched into .upstream/), each run
# plain, under the gate and in report mode; outcomes compared test by test.
# UPSTREAM_ARGS: e.g. --slice, --suite zuko, --json upstream.json.
upstream: $(UPSTREAM_STAMP)
	$(BIN)/python -m upstream run $(UPSTREAM_ARGS)

clean:
	rm -rf $(VENV) .venv-3.* .mypy_cache .ruff_cache .pytest_cache build dist
