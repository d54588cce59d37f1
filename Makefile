# Two commands on a fresh machine: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint typecheck unit docs screenshots tiny-model eval-tiny clean

# llama-cpp-python builds llama.cpp from source; its multimodal library (LLaVA/mtmd), which
# Palestra's llama.cpp backend does not use, is a fifth of that build (LLAVA_BUILD=OFF).
$(STAMP): pyproject.toml constraints.txt
	@if ! command -v chromium >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	    >/dev/null 2>&1 || echo "note: Debian chromium not installed; browser tests and PNG charts will be skipped"; \
	fi
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
	    >/dev/null 2>&1 || echo "note: Debian postgresql not installed; the store's PostgreSQL tests will be skipped"; \
	fi
	$(PYTHON) -m venv $(VENV)
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --no-save --no-audit --no-fund --prefix $(VENV)/axe axe-core@4.14.1 >/dev/null 2>&1 \
	    || echo "note: axe-core not installed from npm; the accessibility test will be skipped"; \
	fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="-DLLAVA_BUILD=OFF $$CMAKE_ARGS" \
	  $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup  ## serve the bundled Palestra Tiny: controller + worker + OpenAI-compatible API
	$(BIN)/palestra serve

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# Two mypy processes (mypy's parallel mode): a cold run in about a third of one's time.
typecheck: setup
	$(BIN)/mypy --num-workers 2 src

# Two test processes, a test file each (pytest-xdist): about two thirds of the time of
# one on two cores. TEST_PROCESSES=0 runs the tests in this process (for a debugger).
TEST_PROCESSES ?= 2

unit: setup
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --dist loadfile

test: lint typecheck unit  ## everything CI runs

docs: setup  ## regenerate docs/cli.md from the commands (a test fails when it is stale)
	PALESTRA_PLUGINS=none $(BIN)/python -m palestra.cli.reference docs/cli.md

screenshots: setup  ## refresh docs/screenshots/ from the browser tests
	PALESTRA_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/e2e

tiny-model: setup  ## rebuild the bundled model from scratch (~25 min on 2 CPU cores)
	$(BIN)/python -m palestra.tinymodel.build --out src/palestra/bundled/tiny-chat

eval-tiny: setup  ## exact-answer accuracy of the bundled model on held-out questions
	$(BIN)/python -m palestra.tinymodel.evaluate src/palestra/bundled/tiny-chat

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
