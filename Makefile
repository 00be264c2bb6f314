# docker-credential-idp: `make demo` sets up and shows the helper serving a real registry; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup system-deps test demo clean

setup: system-deps $(VENV)/.installed

system-deps:
	@scripts/install-system-deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test]'
	touch $@

test: setup
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
