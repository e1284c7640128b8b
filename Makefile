# make book: set up .venv, execute the chapters that changed, build _build/html.
# make test: set up .venv, run the tests.
# Extra arguments for the book driver: make book ARGS="laboratory -p N 400"

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memlab-installed
ARGS ?=

.PHONY: book test results gpu-results clean

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
