# Two commands on a fresh machine with Python >= 3.11 and make:
#   make train   creates .venv, installs vgan_jax, trains the `default` preset on Moving MNIST
#   make test    creates .venv, installs vgan_jax[dev], runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKDIR ?= runs/default
CONFIG ?= default

.PHONY: train test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=68" wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

train: $(VENV)/.installed
	$(BIN)/vgan-jax train --config=$(CONFIG) --workdir=$(WORKDIR)

# One pytest worker per core, whole files per worker: a file's module fixtures (trained
# runs, the built wheel, the 2-process job) are built once. On 2 cores: 9-13 min
# from a cold jit cache (clean clones' .ci/run: 12 min 50 s, then 9 min 2 s), against 38 min 33 s
# for one process (13 min 20 s when tests spread one by one and each worker rebuilds
# those fixtures).
test: $(VENV)/.installed
	$(BIN)/python -m pytest -n auto --dist loadfile tests

lint: $(VENV)/.installed
	$(BIN)/ruff check vgan_jax tests experiments

bench: $(VENV)/.installed
	$(BIN)/python experiments/benchmark_train_step.py

clean:
	rm -rf $(VENV)
