# The README's two commands: `pip install . && agentctl render --env dev` (the example fleet)
# and `make test` (everything CI checks, from a fresh machine).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: test install tools lint docs render-check pytest clean

test: lint docs render-check pytest

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Builds (or reuses) kube-apiserver, etcd, kwok, kubectl, helm and actionlint from their Go
# modules into the user cache; warm runs do nothing.
tools: install
	$(BIN)/python -m agentctl.sandbox.building --dev-tools

lint: install tools
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$$($(BIN)/python -c 'from agentctl.sandbox.building import binary; print(binary("actionlint"))') \
		-shellcheck= -pyflakes= .github/workflows/*.yaml

docs: install
	$(BIN)/mkdocs build --strict --site-dir $$(mktemp -d) --quiet

render-check: install
	$(BIN)/agentctl render --all-envs --check

# Offline tests on both cores, then the tests against the simulated cluster (one cluster).
pytest: install tools
	$(BIN)/pytest -n 2 -m "not cluster"
	$(BIN)/pytest -m cluster

clean:
	rm -rf $(VENV) site .mypy_cache .ruff_cache .pytest_cache
