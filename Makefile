# Two commands on a fresh machine: `make run` (the echo server) and `make test` (every test).
# Each creates .venv itself and installs what it needs from the project's own files.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test setup build lint types unit unit-compiled unit-pure compliance compliance-all bench clean

run: setup
	$(PY) -m wsio serve

test: setup lint types docs unit compliance

# The virtual environment with wsio installed editable (compiled in place) and the
# test peers and tools from pyproject's `dev` extra.
setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel cython
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Recompile the engine after editing one of its modules.
build: setup
	$(PY) setup.py --quiet build_ext --inplace

lint: setup
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check

types: setup
	$(VENV)/bin/mypy

unit: unit-compiled unit-pure

unit-compiled: build
	$(PY) -m pytest -q -p no:cacheprovider

unit-pure: setup
	WSIO_PURE=1 $(PY) -m pytest -q -p no:cacheprovider

# `make test` leaves the checkout as it found it: the summary is printed, not written
# over compliance/RESULTS.md (`python -m compliance.run --ci` by hand refreshes that).
compliance: build
	bash compliance/setup.sh
	$(PY) -m compliance.run --ci --no-results

compliance-all: build
	bash compliance/setup.sh
	$(PY) -m compliance.run --all

bench: build
	$(PY) -m bench

clean:
	rm -rf build $(VENV) src/*.egg-info
	find src -name '*.so' -delete -o -name '*.c' -delete

# The documentation, warnings as errors: docs/_build/html/index.html. Its tools (the
# `docs` extra in pyproject.toml) go into the same .venv, without rebuilding wsio.
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: docs

docs: setup $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

$(DOCS_STAMP): pyproject.toml
	$(PY) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['docs'], sep='\n')" > $(VENV)/docs-requirements.txt
	$(PY) -m pip install --quiet -r $(VENV)/docs-requirements.txt
	touch $(DOCS_STAMP)
