# The study's two commands: `make book` and `make test` (see README.md).
# Both create .venv when missing and install the project into it; nothing is
# fetched from outside the package registries.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: book book-real real-given test lint install phantoms browser clean

install: $(STAMP)

# uv installs the same pinned packages as pip, faster (a fresh install with an empty cache: 66 against 97 s
# here, byte-compiled as pip does: this machine sets PYTHONDONTWRITEBYTECODE, and without .pyc files every
# TensorFlow import takes 13 s instead of 6). uv reads no pip.conf: where it cannot reach the registry (a
# mirror configured for pip only, say), pip installs instead.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	{ $(BIN)/python -m pip install --quiet uv && \
	  $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[test,app]" ; } || \
	{ echo "note: uv could not install the project; pip installs it" >&2 && \
	  $(BIN)/python -m pip install --quiet --upgrade pip && $(BIN)/python -m pip install --quiet -e ".[test,app]" ; }
	$(BIN)/python -m ipykernel install --sys-prefix --name camstudy --display-name "camstudy (.venv)" >/dev/null
	touch $(STAMP)

phantoms: install
	$(BIN)/camstudy data phantoms --profile default

# camstudy book runs the quick benchmark (its performance page) and each experiment only when something
# it depends on changed (run_key.json beside each run). Two notebooks at a time: one alone keeps about
# one core busy while it traces graphs.
book: install phantoms
	$(BIN)/camstudy book --profile default --jobs 2

# The book with a "Real scans" part: the experiments that fit each real data set run on it into results/real/.
# REAL names the data sets by manifest and folder, e.g. make book-real REAL="iqothnccd=../shared/data/iqothnccd".
book-real: real-given install phantoms
	$(BIN)/camstudy book --profile default --jobs 2 $(foreach spec,$(REAL),--real $(spec))

real-given:
	@test -n "$(REAL)" || { echo 'make book-real needs REAL="NAME=DIR ...", e.g. REAL="iqothnccd=/data/iqothnccd" (README.md)' >&2; exit 2; }

# Headless Chromium for the browser tests; Debian packages, installed when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) ; } || \
	  echo "note: could not install chromium; the browser tests will skip"

# Lint and format (ruff), types of the typed packages (mypy, files in pyproject.toml), notebooks (experiments and
# course assignments) without outputs.
lint: install
	$(BIN)/ruff check src tests notebooks assignments
	$(BIN)/ruff format --check src tests notebooks assignments
	$(BIN)/mypy
	$(BIN)/nbstripout --keep-id --verify notebooks/*.ipynb assignments/*.ipynb

test: install browser lint
	$(BIN)/python -m pytest

clean:
	rm -rf _build results .pytest_cache
