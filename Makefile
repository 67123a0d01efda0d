# Two entry points, `make demo` and `make test`, on two kinds of machines:
# - a fresh Debian machine as root (CI): missing Debian packages are installed with apt-get;
# - a cluster login node as an ordinary user: nothing is installed system-wide. The Python on PATH (a module,
#   an activated conda env, or PYTHON=...) is used as it is when it already has every pin of requirements.txt;
#   otherwise a virtualenv is made from it in $(VENV).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (tests/conftest.py says how the tests are shared out); 0: one process
TEST_WORKERS ?= 2
WORDNET_DIR := /usr/share/wordnet

# Exit status 0 when the Python running it has every `name==version` of requirements.txt installed.
HAS_PINS := import importlib.metadata as m, re, sys; \
  pins = [re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip()) for line in open("requirements.txt")]; \
  sys.exit(any(m.version(p[1]).split("+")[0] != p[2] for p in pins if p))
# The Python everything runs with: an existing $(VENV), else $(PYTHON) itself if it has the pins, else a new $(VENV).
PY := $(shell if [ -x $(VENV)/bin/python ]; then echo $(VENV)/bin/python; \
  elif $(PYTHON) -c '$(HAS_PINS)' >/dev/null 2>&1; then command -v $(PYTHON); else echo $(VENV)/bin/python; fi)

.PHONY: demo test test-fast setup system browser venv slurm slurm-down lint format clean

# One thread per training and adaptation job: on a small machine two single-threaded jobs side by side keep
# both cores busy (the adaptation beside the real-data training), where a two-thread job would hold them both.
# The adaptation (and what it reads) goes first: it is the longest chain of the demo.
demo: setup
	$(PY) -m snakemake --cores $(CORES) --set-threads adapt=1 train=1 --prioritize adapt
	$(PY) -m snakemake --report results/report.html
	@echo; cat results/tables/evaluation.md
	@echo; cat results/tables/transfer.md
	@echo; echo "report: results/report.html"

test: setup browser slurm
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

setup: system venv

# Debian packages that help: WordNet 3.0 (read offline) and, for a Debian python3, its venv module. Installed
# only by root on a machine with apt-get; anyone else is told what would help, and the workflow goes on
# (WordNet then comes from NLTK_DATA, config wordnet.nltk_data, or a download by the `wordnet` rule).
system:
	@missing=""; \
	[ -f $(WORDNET_DIR)/data.noun ] || missing="$$missing wordnet-base"; \
	[ -f $(WORDNET_DIR)/index.sense ] || missing="$$missing wordnet-sense-index"; \
	if [ "$(PY)" = "$(VENV)/bin/python" ] && [ ! -x $(VENV)/bin/python ] \
	   && ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then missing="$$missing python3-venv"; fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "note: these Debian packages would help:$$missing (an administrator installs them with apt-get)."; \
	  echo "      Going on without them: WordNet comes from NLTK_DATA, config wordnet.nltk_data, or a download"; \
	  echo "      by the wordnet rule (needs internet once); see docs/cluster.md."; \
	fi

# A headless browser for the test that opens the report (root only; the test says when it is missing).
browser:
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian package: chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi

ifeq ($(PY),$(VENV)/bin/python)
venv: $(VENV)/.installed
else
venv:
	@echo "using $(PY) as it is: it has every package pinned in requirements.txt (no $(VENV) made)"
endif

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "$(PYTHON) ($$(command -v $(PYTHON) || echo not found)) is not Python 3.11 or newer (Snakemake 9)." >&2; \
	  echo "Load one (module load python/3.11), activate a conda env (conda env create -f envs/imagenet-sd.yaml)," >&2; \
	  echo "or name it: make demo PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "$(PYTHON) -m venv failed: on Debian/Ubuntu its venv module is the package python3-venv; or use a" >&2; \
	  echo "module or conda Python, which have it." >&2; exit 1; }
	$(VENV)/bin/python -m pip install -q -r requirements.txt
	touch $@

# A real single-node Slurm (munge, slurmctld, slurmd; cpu + gpu partitions, two fake GPUs) for the SLURM
# tests. Only root can start one; anyone else runs the SLURM tests against the Slurm that answers, if any.
slurm:
	@if [ "$$(id -u)" = 0 ]; then bash .ci/slurm-setup.sh; \
	else echo "not root: no local Slurm started (tests/workflow/test_slurm.py needs partitions cpu and gpu, else it is skipped)"; fi

slurm-down:
	bash .ci/slurm-teardown.sh

# The unit tier: no Snakemake run, no Slurm; about a minute, for everyday work.
test-fast: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Python style (ruff), rule-file style (snakefmt) and Snakemake's own lints; CI runs it before the tests.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m snakefmt --check Snakefile rules/
	$(PY) -m snakemake --lint

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .
	$(PY) -m snakefmt Snakefile rules/

clean:
	rm -rf results logs .snakemake
