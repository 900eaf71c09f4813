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

test: $(VENV)/.installed
	$(BIN)/python -m pytest tests

lint: $(VENV)/.installed
	$(BIN)/ruff check vgan_jax tests experiments

bench: $(VENV)/.installed
	$(BIN)/python experiments/benchmark_train_step.py

clean:
	rm -rf $(VENV)
