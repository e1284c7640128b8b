# make book: set up .venv, execute the chapters that changed, build _build/html.
# make test: set up .venv, run the tests.
# Extra arguments for the book driver: make book ARGS="laboratory -p N 400"

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memlab-installed
ARGS ?=

.PHONY: book test check-book check-citation results gpu-results clean

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

# The checks of the built book (after make book): its HTML files, then the pages in Debian's
# Chromium driven by Playwright (installed here through apt when missing; no browser download).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
check-book: $(STAMP)
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	$(BIN)/python -m pytest -q tests/built --built-book _build/html

# CITATION.cff, and the copy that the built book publishes with its commit, against the
# Citation File Format schema (cffconvert, pinned in .ci/cffconvert.lock, in its own .venv-cff:
# it needs a jsonschema older than the book's).
check-citation: .venv-cff/.installed
	.venv-cff/bin/cffconvert --validate -i CITATION.cff
	test ! -f _build/html/CITATION.cff || .venv-cff/bin/cffconvert --validate -i _build/html/CITATION.cff
.venv-cff/.installed: .ci/cffconvert.lock
	test -x .venv-cff/bin/python || $(PYTHON) -m venv .venv-cff
	.venv-cff/bin/python -m pip install --quiet -r .ci/cffconvert.lock
	touch $@

# Trains and stores models (resumable): make results PROFILE=paper SEEDS="0 1 2", make results SCALING=paper [SEEDS=0],
# make results ABLATION=paper (the initialisation ablation), make results PROFILE=paper_fast SEEDS=0
# CAPACITIES="127 135" (those M only); WORKERS=2: one one-thread process per core
# (Dask LocalCluster workers); SCHEDULER=tcp://host:8786: the workers of a running Dask cluster instead
PROFILE ?=
ABLATION ?=
SCALING ?=
SEEDS ?=
CAPACITIES ?=
WORKERS ?=
SCHEDULER ?=
results: $(STAMP)
	$(BIN)/python -m memlab.sweep $(if $(PROFILE),--profile $(PROFILE)) $(if $(ABLATION),--ablation $(ABLATION)) \
		$(if $(SCALING),--scaling $(SCALING)) $(if $(SEEDS),--seeds $(SEEDS)) \
		$(if $(CAPACITIES),--capacities $(CAPACITIES)) \
		$(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

# Paper-scale runs on a GPU machine, with that machine's own python3 and PyTorch (no .venv):
#   make gpu-results OUT=<folder> [MINUTES=8]
# trains what is missing of the paper profile, its initialisation ablation, then the paper
# scaling sweep, on the GPU,
# stops at the first checkpoint after MINUTES, and packs results/paper (finished models and
# checkpoints) into OUT/results-paper.tar.gz. Unpack it here (tar xzf) and commit; rerun to resume.
MINUTES ?= 8
OUT ?= .
gpu-results:
	PYTHONPATH=. python3 -m memlab.sweep --profile paper --ablation paper --scaling paper --device cuda --minutes $(MINUTES); \
	status=$$?; tar czf $(OUT)/results-paper.tar.gz results/paper; exit $$status

# Removes everything the build made: the HTML, the executed chapters and their figures.
clean:
	rm -rf _build book/chapters .pytest_cache
