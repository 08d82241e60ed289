# tlog: `make serve` starts a log on ./tlog-data, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Two stamps: serving needs the package only; the tests need its test extras as well.
TEST_STAMP := $(VENV)/.installed-test
DATA   ?= tlog-data
HOST   ?= 127.0.0.1
PORT   ?= 3000

.PHONY: serve test lint bench crash-test fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

serve: $(STAMP)
	$(VENV)/bin/tlog serve --data-dir $(DATA) --host $(HOST) --port $(PORT)

test: lint
	$(PY) -m pytest -q

# Types (mypy --strict, settings in pyproject.toml) and lint (ruff): part of `make test`.
lint: $(TEST_STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check

# Benchmarks: N submissions and reads with C clients against a fresh log (or DATA=dir).
bench: $(STAMP)
	$(VENV)/bin/tlog bench --entries $${N:-5000} --reads $${R:-5000} --concurrency $${C:-64} $${BENCH_ARGS}

# Long reliability run: SIGKILL a loaded server KILLS times (default 25), check everything after each.
crash-test: $(TEST_STAMP)
	$(PY) -m tests.crash --kills $${KILLS:-25} --clients $${C:-32}

# Long hostile-input run: many more hypothesis and schemathesis examples.
fuzz: $(TEST_STAMP)
	TLOG_FUZZ_LONG=1 $(PY) -m pytest -q -s tests/test_hostile_input.py tests/test_openapi.py

clean:
	rm -rf $(VENV) build *.egg-info
