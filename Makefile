# Entry points on a fresh machine: `make run` (the echo server: wsio alone), `make test`
# (every check CI runs; .ci/prereqs.sh says what it needs) and `make unit-fast` (the unit
# tests on the compiled engine, nothing else). Each creates .venv itself and installs what
# it needs from the project's own files.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# One stamp per set of installed packages: running needs wsio alone; the tests add the
# `dev` extra (peers and tools), the benchmarks the `bench` extra (matplotlib).
RUN_STAMP   := $(VENV)/.installed-run
STAMP       := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# The editable install itself compiles nothing (WSIO_NO_EXTENSIONS=1): `build` compiles
# the engine once, in place, and again only what changed, instead of pip compiling all of
# it in a throwaway directory on every install. The build requirements come from the
# first pip line (no isolated build environment to download each time).
PIP_E  := WSIO_NO_EXTENSIONS=1 $(PY) -m pip install --quiet --no-build-isolation -e

.PHONY: run test prereqs setup build lint types unit unit-fast unit-compiled unit-pure \
	packaging compliance compliance-all bench clean

run: $(RUN_STAMP) build
	$(PY) -m wsio serve

test: prereqs setup lint types docs unit packaging compliance

# Python >= 3.10, a C compiler, pyenv's Python 2.7.18 (Autobahn), chromium (installed
# with apt-get when missing): one line each, before anything long starts.
prereqs:
	PYTHON=$(PYTHON) bash .ci/prereqs.sh

$(RUN_STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel cython
	$(PIP_E) .
	touch $@

# The virtual environment with wsio installed editable and the test peers and tools from
# pyproject's `dev` extra.
setup: $(STAMP)

$(STAMP): $(RUN_STAMP)
	$(PIP_E) '.[dev]'
	touch $@

# Compile the engine in place (after editing one of its modules, only what changed) and
# say which engine is live: pip hides the build's own line unless run with -v.
build: $(RUN_STAMP)
	$(PY) setup.py --quiet build_ext --inplace
	@$(PY) -c 'import wsio, sys; print("wsio: engine " + ("compiled" if wsio.COMPILED else \
		"NOT compiled: pure Python (see the warning above)"), file=sys.stderr)'

lint: setup
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check

types: setup
	$(VENV)/bin/mypy

# Both ways at once: a run spends most of its time waiting on peers and timeouts (68 s of
# CPU in a 931 s run on the loaded machine), and the two share nothing on disk but
# .hypothesis (safe for concurrent use): free ports, their own pytest temp dirs, no cache.
# Each run's output is printed when it ends.
unit: setup build
	$(MAKE) --no-print-directory -j2 --output-sync=target unit-compiled unit-pure

# The unit tests alone on the compiled engine: no pure-Python pass, no Autobahn.
unit-fast: unit-compiled

unit-compiled: setup build
	$(PY) -m pytest -q -p no:cacheprovider

unit-pure: setup build
	WSIO_PURE=1 $(PY) -m pytest -q -p no:cacheprovider

# Wheels: compiled and saying so, no generated C and no debug info; pure (with a warning)
# without a compiler or with WSIO_NO_EXTENSIONS=1.
packaging: setup
	$(PY) .ci/check_wheels.py

# `make test` leaves the checkout as it found it: the summary is printed, not written
# over compliance/RESULTS.md (`python -m compliance.run --ci` by hand refreshes that).
compliance: build
	bash compliance/setup.sh
	$(PY) -m compliance.run --ci --no-results

compliance-all: build
	bash compliance/setup.sh
	$(PY) -m compliance.run --all

$(BENCH_STAMP): $(STAMP)
	$(PIP_E) '.[dev,bench]'
	touch $@

bench: $(BENCH_STAMP) build
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
