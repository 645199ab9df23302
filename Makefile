# srbench — the two commands a newcomer needs: `make bench` and `make test`.
# Every target creates .venv on first use (torch 2.14.1 / torchvision 0.29.1, then `pip install -e .[dev]`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.srbench-installed
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

METHOD ?= all
DATASET ?= samples
TRAIN_DATASET ?= train_folder
DATASET_ARGS ?=
ARGS ?=
PYTEST_ARGS ?=

.PHONY: bench sweep train report perf perf-spandrel test test-gpu clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## bench: run METHOD (default: every method with weights) on DATASET (default: embedded samples, x4)
bench: $(STAMP)
	$(BIN)/srbench-bench method=$(METHOD) dataset=$(DATASET) $(DATASET_ARGS) $(ARGS)

## sweep: Hydra multirun, e.g. make sweep METHOD=bicubic,ecdp DATASET=set5,set14 ARGS='hydra/launcher=submitit_slurm'
sweep: $(STAMP)
	$(BIN)/srbench-bench -m method=$(METHOD) dataset=$(DATASET) $(DATASET_ARGS) $(ARGS)

## train: make train METHOD=ecdp ARGS='experiment=ecdp_train_df2k_regressor dataset.hr_dir=/data/DF2K_HR'   (TRAIN_DATASET defaults to train_folder)
train: $(STAMP)
	$(BIN)/srbench-train method=$(METHOD) dataset=$(TRAIN_DATASET) $(DATASET_ARGS) $(ARGS)

## report: leaderboard (markdown/CSV) + HTML report (results/report/index.html: CIs, p-values, metric cards, plots, failed jobs)
report: $(STAMP)
	$(BIN)/srbench report $(ARGS)

## perf: speed / memory table with random weights, written to results/perf/<device>.csv
perf: $(STAMP)
	$(BIN)/srbench perf $(ARGS)

## perf-spandrel: the spandrel adapter's cost over calling spandrel directly (goal ≤ 5 %), CPU
perf-spandrel: $(STAMP)
	$(BIN)/python benchmarks/spandrel_overhead.py --csv results/perf/spandrel_overhead.csv $(ARGS)

## test: the CPU test suite (GPU tests are marked and skipped; run them with `make test-gpu`)
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu $(PYTEST_ARGS)

clean:
	rm -rf results outputs multirun .pytest_cache
