# A fresh machine needs two commands, each setting itself up first: the virtual
# environment in $(VENV) is made and filled once (again only when pyproject.toml changes),
# so both are fast when everything is installed already.
#   make quickstart   install what is missing, then run the whole chain on sample data
#   make test         install what is missing, then lint, the test suite and the docs build
#                     (what CI runs)
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.dchag-installed

.PHONY: install quickstart test docs

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/dchag quickstart --out quickstart --overwrite

export NO_MKDOCS_2_WARNING := 1
export DISABLE_MKDOCS_2_WARNING := true

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -n auto --maxschedchunk 1
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir "$$(mktemp -d)"

docs: $(STAMP)
	$(VENV)/bin/mkdocs serve
