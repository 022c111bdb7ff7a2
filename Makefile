# The two commands:  `make reports` (main job) and `make test` (whole test suite).
# Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= full
ONLY   ?=
# The default dataset of the full profile; DATASET=all runs every dataset listed in the notebooks' profiles.
# The smoke profile runs every notebook's smoke runs unless DATASET is given.
DATASET ?= $(if $(filter full,$(PROFILE)),ml100k,all)
# torch: pinned; TORCH_INDEX picks another wheel index, e.g. PyTorch's CPU-only index on a Linux machine where
# the default wheel is the CUDA build (several GB): make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=

# Point the workbench at the shared datasets when they sit beside the checkout.
ifeq ($(origin MMGREC_DATA), undefined)
  ifneq ($(wildcard ../shared/data),)
    export MMGREC_DATA := $(abspath ../shared/data)
  endif
endif

.PHONY: reports test unit nbtest venv features clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),) $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e .[dev]
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# The runner prints its plan first: runs, runs left out and why, expected time, committed files it rewrites.
reports: venv
	$(BIN)/mmgrec reports --profile $(PROFILE) $(if $(ONLY),--only $(ONLY),) $(if $(filter-out all,$(DATASET)),--dataset $(DATASET),)

# First-run feature extraction (text and poster embeddings of ml100k, a few CPU-minutes), once, with a
# progress bar, before the tests; later runs read the cache ($MMGREC_CACHE, default ~/.cache/mmgrec).
features: venv
	$(BIN)/mmgrec features

test: venv features
	$(BIN)/python -m pytest -q tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

unit: venv
	$(BIN)/python -m pytest -q tests -p no:cacheprovider

clean-venv:
	rm -rf $(VENV)
