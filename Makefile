# Setup and entry points. `make run` and `make test` create .venv on first use and reuse it
# while pyproject.toml is unchanged.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bytecode clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Editable installs get no bytecode from pip, and PYTHONDONTWRITEBYTECODE (set on some
# machines) keeps Python from caching it: compile once so workers start without compiling.
bytecode: $(STAMP)
	$(PY) -m compileall -q engine bench

run: bytecode
	$(PY) examples/pipeline.py

lint: $(STAMP)
	$(VENV)/bin/ruff check engine tests bench examples
	$(VENV)/bin/mypy engine

test: bytecode lint
	$(PY) -m pytest -q

bench: bytecode
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
