# make book: set up .venv, execute the chapters that changed, build _build/html.
# make test: set up .venv, run the tests.
# Extra arguments for the book driver: make book ARGS="laboratory -p N 400"

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memlab-installed
ARGS ?=

.PHONY: book test results clean

# Reinstall only when the pinned environment or the package metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

book: $(STAMP)
	$(BIN)/python -m memlab.book $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=10

# Trains and stores a profile's models (resumable): make results PROFILE=paper SEEDS="0 1 2"
PROFILE ?= paper
SEEDS ?=
results: $(STAMP)
	$(BIN)/python -m memlab.sweep --profile $(PROFILE) $(if $(SEEDS),--seeds $(SEEDS))

# Removes everything the build made: the HTML, the executed chapters and their figures.
clean:
	rm -rf _build book/chapters .pytest_cache
