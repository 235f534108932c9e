#!/usr/bin/env bash
# One process (every core) against two processes (half the cores each, DDP over gloo) on this
# machine, at the recipe's global batch of 16, on the same slice of the headline run.
#   bash bench/processes.sh OUT_DIR [TRAIN_FRACTION]
# Writes each run's small outputs under OUT_DIR/{one,two}, their log to OUT_DIR.log, and prints
# (and writes to OUT_DIR.md) samples/s, dev F1, peak memory per process and the MFU of the
# optimizer steps alone beside that of the whole train() (which includes the learning-curve
# evaluations, kept here on 200 questions), with the two/one ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/processes.sh OUT_DIR [TRAIN_FRACTION]}
FRACTION=${2:-0.03}
export SQUAD_DIR=${SQUAD_DIR:-$(realpath ../shared/squad)} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
FLAGS="--train_fraction $FRACTION --max_eval_samples 1000 --eval_questions_during_training 200
  --save_strategy no --num_samples 0 --report_to none --overwrite_output_dir true"
rm -rf runs/bench-processes-*
mkdir -p "$(dirname "$OUT")"
{
  .venv/bin/accelerate launch --num_processes 1 run_qa.py configs/squad20pct.json $FLAGS \
    --output_dir runs/bench-processes-one --results_dir "$OUT/one"
  .venv/bin/accelerate launch --config_file configs/accelerate/cpu_ddp.yaml run_qa.py \
    configs/squad20pct.json $FLAGS --per_device_train_batch_size 8 \
    --output_dir runs/bench-processes-two --results_dir "$OUT/two"
} > "$OUT.log" 2>&1
.venv/bin/python - "$OUT" <<'PY' | tee "$OUT.md"
import json, sys
out = sys.argv[1]
runs = {name: json.load(open(f"{out}/{name}/all_results.json")) for name in ("one", "two")}
config = json.load(open(f"{out}/one/run_config.json"))["machine"]
print(f"{config['cpu_model']}, {config['cpu_count']} cores; {config['precision']}; "
      f"commit {json.load(open(f'{out}/one/run_config.json'))['git_commit']}\n")
rows = [("training samples/s", "train_samples_per_second", "{:.2f}"),
        ("dev F1 (first 1,000 questions)", "eval_f1", "{:.2f}"),
        ("peak memory of process 0 (MiB)", "peak_rss_mib", "{:.0f}"),
        ("MFU, optimizer steps alone", "train_steps_mfu", "{:.1%}"),
        ("MFU, whole train()", "train_mfu", "{:.1%}")]
print("| | 1 process | 2 processes | 2 / 1 |\n| --- | ---: | ---: | ---: |")
for label, key, fmt in rows:
    one, two = runs["one"][key], runs["two"][key]
    print(f"| {label} | {fmt.format(one)} | {fmt.format(two)} | {two / one:.3f} |")
PY
