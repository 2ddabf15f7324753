# Everyday commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint format typecheck browser postgres bench eval clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	# dev includes the cluster extra (Ray Data, ~80 MB, no torch): CI runs the Ray build tests.
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(STAMP)

run: setup
	HF_HUB_OFFLINE=1 $(BIN)/python app.py

browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; }

# PostgreSQL's server programs (Debian's postgresql-15) for the shared-feedback tests: the
# tests start a server of their own, in a temporary folder, as an unprivileged user.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q postgresql-15; }

lint: setup
	$(BIN)/ruff check assistant tests benchmarks app.py
	$(BIN)/ruff format --check assistant tests benchmarks app.py
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix assistant tests benchmarks app.py
	$(BIN)/ruff format assistant tests benchmarks app.py

# The first index build fine-tunes the model (about 1.5 minutes, cached by content): it runs
# in the background while the browser installs and the linters run, and the tests use that
# index (LBP_TEST_INDEX). ranx's metrics run as plain Python in the tests (NUMBA_DISABLE_JIT):
# numba would spend about two minutes compiling them in a fresh venv for inputs of a few
# queries; `eval` and the benchmarks run them compiled.
test: setup
	@warm=$$(mktemp -d); \
	HF_HUB_OFFLINE=1 $(BIN)/python -m assistant build --index $$warm/index >$$warm/build.log 2>&1 & build=$$!; \
	$(MAKE) --no-print-directory browser postgres lint || { kill $$build; exit 1; }; \
	wait $$build || { cat $$warm/build.log; exit 1; }; \
	HF_HUB_OFFLINE=1 NUMBA_DISABLE_JIT=1 LBP_TEST_INDEX=$$warm/index $(BIN)/python -m pytest; status=$$?; \
	rm -rf $$warm; exit $$status

bench: setup
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/run.py --quick

eval: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m assistant eval

clean:
	rm -rf index .pytest_cache .mypy_cache .ruff_cache artifacts
