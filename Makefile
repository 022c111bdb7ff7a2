# The two commands:  `make reports` (main job) and `make test` (whole test suite).
# Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= full
ONLY   ?=
# The default dataset; DATASET=all runs every dataset listed in the notebooks' profiles.
DATASET ?= ml100k

# Point the workbench at the shared datasets when they sit beside the checkout.
ifeq ($(origin MMGREC_DATA), undefined)
  ifneq ($(wildcard ../shared/data),)
    export MMGREC_DATA := $(abspath ../shared/data)
  endif
endif

.PHONY: reports test unit nbtest venv clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e .[dev]
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

reports: venv
	$(BIN)/mmgrec reports --profile $(PROFILE) $(if $(ONLY),--only $(ONLY),) $(if $(filter-out all,$(DATASET)),--dataset $(DATASET),)

test: venv
	$(BIN)/python -m pytest -q tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

unit: venv
	$(BIN)/python -m pytest -q tests -p no:cacheprovider

clean-venv:
	rm -rf $(VENV)
