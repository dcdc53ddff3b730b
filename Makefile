# Two commands for a newcomer: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock -r requirements-dev.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot

lint: $(STAMP)
	$(BIN)/ruff format --check bot adapters tests benchmarks
	$(BIN)/ruff check bot adapters tests benchmarks
	$(BIN)/mypy

# four workers: most tests wait on the sandbox's (scaled) render times, not on the CPU; an idle
# worker takes tests queued on a busy one (worksteal), so the run does not end on one long tail
test: lint
	$(BIN)/python -m pytest -q -n 4 --dist worksteal

bench: $(STAMP)
	$(BIN)/python benchmarks/parse_bench.py
	$(BIN)/python benchmarks/poll_bench.py
	$(BIN)/python benchmarks/load_bench.py
	$(BIN)/python benchmarks/chaos.py --requests 200 --kills 2

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
