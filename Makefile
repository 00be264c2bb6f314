# docker-credential-idp: `make demo` sets up and shows the helper serving a real registry; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Our wheel and every wheel it needs, so that tests/test_install.py installs it into a fresh venv offline.
WHEELHOUSE := $(VENV)/wheelhouse

.PHONY: setup system-deps test test-fast test-pip test-binary test-agent binary wheel lint demo bench clean

setup: system-deps $(VENV)/.installed $(WHEELHOUSE)/.built

system-deps:
	@scripts/install-system-deps.sh

# A regular (not editable) install, as users get it: an editable install's import hook costs every call ~15 ms.
# The package is reinstalled whenever its sources change; its dependencies only when pyproject.toml does.
SOURCES := $(shell find docker_credential_idp -name '*.py') packaging/launcher/docker-credential-idp

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet '.[test,binary]'
	touch $@

$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(BIN)/pip install --quiet --no-deps --force-reinstall .
	touch $@

$(WHEELHOUSE)/.built: $(VENV)/.deps $(SOURCES)
	rm -rf $(WHEELHOUSE)
	$(BIN)/pip wheel --quiet --wheel-dir $(WHEELHOUSE) .
	touch $@

# The wheel to hand to users (no package index serves this project): pip install dist/docker_credential_idp-*.whl
wheel: $(VENV)/.deps
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

# Every test against the pip install, then the protocol, provider and real-client tests against the bundle, through
# its agent.
test: test-pip test-binary

lint: setup
	$(BIN)/ruff check docker_credential_idp tests scripts packaging
	$(BIN)/mypy

test-pip: lint
	$(BIN)/python -m pytest

# The inner loop (well under a minute): lint, types, and the tests that need no registry, daemon or cloud stand-in.
FAST_TESTS := tests/test_matching.py tests/test_crypto.py tests/test_vault.py tests/test_paths.py tests/test_protocol.py \
	tests/test_pipeline.py tests/test_leaks.py tests/test_unwritable_home.py tests/test_kubernetes.py \
	tests/test_commands_in_process.py tests/test_provider_rules.py tests/test_configure_docker.py \
	tests/test_registry_check.py

test-fast: lint
	$(BIN)/python -m pytest -q $(FAST_TESTS)

BUNDLE := dist/docker-credential-idp/docker-credential-idp

# A PyInstaller onedir bundle with every provider's SDK (packaging/docker-credential-idp.spec says why onedir).
binary: $(BUNDLE)

$(BUNDLE): $(VENV)/.installed packaging/docker-credential-idp.spec packaging/entry.py
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
		packaging/docker-credential-idp.spec
	touch $@

# The protocol, provider and real-client suites run here with `get` answered by a resident agent (IDP_TEST_AGENT=1:
# `agent start` for every test's home), the bundle's; test-pip ran them without one. No behaviour may differ.
AGENT_SUITES := tests/test_protocol.py tests/test_provider_conformance.py tests/e2e

test-binary: setup binary
	IDP_TEST_HELPER=$(CURDIR)/$(BUNDLE) $(BIN)/python -m pytest -p no:cacheprovider \
		tests/test_sources.py tests/test_credential_store_defences.py tests/test_unwritable_home.py
	IDP_TEST_AGENT=1 IDP_TEST_HELPER=$(CURDIR)/$(BUNDLE) $(BIN)/python -m pytest -p no:cacheprovider $(AGENT_SUITES)

# The same suites through an agent of the pip install (make test runs them so against the bundle).
test-agent: setup
	IDP_TEST_AGENT=1 $(BIN)/python -m pytest -p no:cacheprovider $(AGENT_SUITES)

demo: setup
	$(BIN)/python scripts/demo.py

# Latency and memory of `get` against Go's ecr-login and docker-credential-pass (docs/performance.md). Not a test.
# BENCH_ARGS: more of scripts/bench.py's options, e.g. --helper main=/path/to/another/docker-credential-idp.
bench: setup binary
	@scripts/install-system-deps.sh --bench
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
