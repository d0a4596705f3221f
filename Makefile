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
# With --compare-redis, the Debian package redis-server (apt-get) and the bench-redis extra are installed
# first, and only then.
bench: $(VENV)/.installed
ifneq (,$(findstring --compare-redis,$(BENCH_ARGS)))
	@command -v redis-server >/dev/null 2>&1 || { apt-get install -y -q redis-server >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1; }; } || \
	  { echo "--compare-redis: redis-server could not be installed with apt-get (install the Debian package redis-server)" >&2; exit 1; }
	@$(PY) -c "import throttled, redis" 2>/dev/null || $(PY) -m pip install --quiet -e '.[bench-redis]'
endif
	$(PY) -m zae_limiter.benchmark $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
