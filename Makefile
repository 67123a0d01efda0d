# Two entry points on a fresh Debian machine (as root): `make demo` and `make test`.
# Both set up everything they need: Debian packages, a local virtualenv in .venv, and (for tests) a
# single-node Slurm.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
APT_PACKAGES := wordnet-base wordnet-sense-index chromium
PYTEST_ARGS ?=

.PHONY: demo test setup system venv slurm slurm-down lint clean

demo: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo; cat results/tables/evaluation.md; echo "report: results/report.html"

test: setup slurm
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: system venv

# Debian packages: WordNet 3.0 for NLTK (read offline) and the Python venv module if missing.
system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

# A real single-node Slurm (munge, slurmctld, slurmd; cpu + gpu partitions, two fake GPUs) for the SLURM tests.
slurm:
	bash .ci/slurm-setup.sh

slurm-down:
	bash .ci/slurm-teardown.sh

lint: setup
	$(BIN)/snakemake --lint

clean:
	rm -rf results logs .snakemake
