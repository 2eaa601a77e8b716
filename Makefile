# Every target builds its own virtualenv from nothing: a fresh machine needs only
# Python 3 and make.
# The interpreter that builds the venv. (PYTHON is `make package`'s target version.)
HOST_PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

PLATFORM ?= lambda
APP ?=
ARCH ?= x86_64
PYTHON ?= 3.12

.PHONY: install test lint demo bench package clean

$(STAMP): pyproject.toml
	$(HOST_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,hiredis]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check faaspool tests bench examples
	$(VENV)/bin/mypy

demo: $(STAMP)
	$(PY) examples/demo_local.py

bench: $(STAMP)
	$(PY) bench/core.py

package: $(STAMP)
	$(PY) scripts/package.py --platform $(PLATFORM) --arch $(ARCH) --python $(PYTHON) $(if $(APP),--app $(APP))

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
