# `make demo` and `make test` each create the virtual environment they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m zae_limiter.demo

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# The hot path's cost on the embedded DynamoDB (docs/benchmarks.md), e.g.
# `make bench BENCH_ARGS="--quick"` or `make bench BENCH_ARGS="--compare-published"`.
bench: $(VENV)/.installed
	$(PY) -m zae_limiter.benchmark $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
