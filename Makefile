# `make test` sets everything up on a fresh machine (virtualenv, CPU torch first, the package with its extras)
# and runs the default test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup test test-docs test-slow notebooks docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	# torch first: a bare `torch` requirement would otherwise pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,train,export,medical,notebooks,docs,serve,demo]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m pytest -q modeling_tests

# every code block of the README and the site, and the notebooks, executed (slow-marked: ~9 CPU-minutes; CI runs it)
test-docs: setup
	$(BIN)/python -m pytest -q -m slow modeling_tests/test_docs_code.py modeling_tests/test_notebooks.py

test-slow: setup
	$(BIN)/python -m pytest -q -m slow modeling_tests

notebooks: setup
	$(BIN)/python notebooks/build_notebooks.py

# the documentation site in site/ (the pages of docs/, API reference from the docstrings, notebooks), offline;
# every warning is an error (mkdocs.yml: strict)
docs: setup
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache site
