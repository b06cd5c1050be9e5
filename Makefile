# The few entry points: make run, make test, make lint, make bench.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# the data file: STROKEOPS_DATA if set, else data/ in the checkout, else the copy that lies
# beside the checkout on this project's machines
DATA_FILE := healthcare-dataset-stroke-data.csv
export STROKEOPS_DATA ?= $(firstword $(wildcard data/$(DATA_FILE) ../shared/data/$(DATA_FILE)) data/$(DATA_FILE))
# one math thread per process: the pipeline parallelises across CV folds instead
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: run serve test lint format bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[train,serve]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

# the main job, then the API serving the champion it just trained (Ctrl-C stops it)
run: $(VENV)/.installed-run
	$(BIN)/strokeops run
	$(BIN)/strokeops serve

serve: $(VENV)/.installed-run
	$(BIN)/strokeops serve

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# system tools the tests use, from Debian (CI runs as root on Debian): the page's browser test
# drives chromium; the container tests validate the Compose file with docker-compose
system-deps:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	command -v docker-compose >/dev/null || (apt-get update -qq && apt-get install -y -qq docker-compose)

test: lint system-deps
	$(BIN)/pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/pipeline.py

# our API vs `mlflow models serve` and a FastAPI floor, same client (wrk if installed, else httpx)
.PHONY: bench-serve
bench-serve: $(VENV)/.installed-dev
	$(BIN)/python bench/serve.py

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .strokeops .pytest_cache .ruff_cache
