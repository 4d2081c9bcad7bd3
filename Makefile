# `make run` and `make test` create .venv and install what they need first: `make run` the
# package alone (the demo needs no extra), `make test` and `make lint` also the development
# extras. Each install leaves a stamp, so `make run` after `make test` installs nothing, and
# `make test` after `make run` adds only the extras.
# TORCH picks the PyTorch build: the default pin is a CPU build on our CI machines; on a CUDA
# machine use e.g. `make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`
# (see README). EXTRAS are the optional groups installed for development.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
EXTRAS ?= dev,atari,video,slurm,optuna,minatar
STAMP := $(VENV)/.installed-stamp
CORE_STAMP := $(VENV)/.installed-core
# tests run in parallel, one worker per core (pytest-xdist); most are single-threaded Python.
# --dist loadfile: each test file runs on one worker, so a module-scoped fixture (a trained agent)
# is built once, and the slurm tests' jobs queue one at a time. Where tests/durations.json holds
# a full run's time per file (`make test PYTEST_ARGS=--record-durations` writes it),
# tests/conftest.py hands the longest files out first, so that the workers finish together.
# PYTEST_WORKERS=0: in-process.
# PYTHONDONTWRITEBYTECODE is unset for the tests: with it set (CI's containers, our Dockerfile)
# and the --no-compile install, every Python process of the suite (the workers and each command
# line a test starts) compiled the modules it imports from source: `import torch` took 6.5 s of
# CPU instead of 3.2 s, a tiny training command 11 s instead of 5.4 s (docs/benchmarks.md).
# Unset, the first import of a module writes its cache in .venv, and later processes read it.
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=

.PHONY: run test lint install clean docker-check

# $(call install_package,EXTRAS): the venv, torch, then the package with those extras (none: "").
# --no-compile: pip byte-compiled every installed module (torch, sympy, pandas, scipy ...), 56 s
# of CPU, more than the rest of the core install (52 s); Python compiles the modules a run
# imports on their first import instead (about 1 s for the demo's; docs/benchmarks.md)
define install_package
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile $(TORCH)
	$(PY) -m pip install --quiet --no-compile -e ".$(if $(1),[$(1)])"
endef

# the package with the development extras; it holds everything the core install does
$(STAMP): pyproject.toml Makefile
	$(call install_package,$(EXTRAS))
	touch $(STAMP) $(CORE_STAMP)

# the package alone: what the demo imports (torch, gymnasium, hydra, matplotlib, scipy, ...)
$(CORE_STAMP): pyproject.toml Makefile
	$(call install_package,)
	touch $(CORE_STAMP)

install: $(STAMP)

run: $(CORE_STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# build the Docker image and train, pre-empt and resume in it (scripts/docker_check.sh; needs
# root to start a Docker daemon when none answers)
docker-check:
	scripts/docker_check.sh

clean:
	rm -rf $(VENV) runs multirun outputs
