# shapvision: every target creates .venv and installs the project on first use (and again when
# pyproject.toml changes), so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_FLAGS ?=

.PHONY: install test test-slow lint bench demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_FLAGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check shapvision tests benchmarks
	$(BIN)/ruff format --check shapvision tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/shapley_core.py
	$(BIN)/python benchmarks/masked_forward.py

demo: $(STAMP)
	$(BIN)/python benchmarks/shapley_core.py --seeds 5

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache
