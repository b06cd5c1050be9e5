# The few entry points: make run, make test, make lint, make bench.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export STROKEOPS_DATA ?= data/healthcare-dataset-stroke-data.csv
# one math thread per process: the pipeline parallelises across CV folds instead
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: run serve test lint format bench clean

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

test: lint
	$(BIN)/pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/pipeline.py

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .strokeops .pytest_cache .ruff_cache
