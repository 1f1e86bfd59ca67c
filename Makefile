# The two commands a user needs: `make demo` and `make test`. Everything else is set up by them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.flp-installed
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.flp-tools-installed

.PHONY: demo test lint bench setup
setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	scripts/setup-venv.sh "$(PYTHON)" "$(VENV)"
	touch $(STAMP)

$(TOOLS_STAMP): requirements-tools.lock
	scripts/setup-tools.sh "$(PYTHON)" "$(TOOLS)"
	touch $(TOOLS_STAMP)

demo: $(STAMP)
	$(BIN)/flp demo --keep-serving  # then open the dashboard URL it prints

test: $(STAMP) $(TOOLS_STAMP)
	scripts/run-tests.sh

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy . && $(BIN)/lint-imports --no-cache
