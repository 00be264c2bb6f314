# docker-credential-idp: `make demo` sets up and shows the helper serving a real registry; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup system-deps test demo bench clean

setup: system-deps $(VENV)/.installed

system-deps:
	@scripts/install-system-deps.sh

# A regular (not editable) install, as users get it: an editable install's import hook costs every call ~15 ms.
# The package is reinstalled whenever its sources change; its dependencies only when pyproject.toml does.
SOURCES := $(shell find docker_credential_idp -name '*.py')

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet '.[all,test]'
	touch $@

$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(BIN)/pip install --quiet --no-deps --force-reinstall .
	touch $@

test: setup
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python scripts/demo.py

# Latency and memory of `get` against Go's docker-credential-ecr-login (README, Performance). Not a test.
bench: setup
	@scripts/install-system-deps.sh --bench
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
