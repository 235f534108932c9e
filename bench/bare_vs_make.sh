#!/usr/bin/env bash
# The design's bare command against `make train`, on the same 1,024-question training run.
#   bash bench/bare_vs_make.sh OUT_DIR [PAIRS]
# Runs alternate in order (bare, make, make, bare, ...): a run right after another tends to be
# slower on a small shared machine, so each side goes first equally often. Prints a table of the
# training times (train_runtime) and writes each run's small outputs under OUT_DIR/{bare,make}-N.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/bare_vs_make.sh OUT_DIR [PAIRS]}
PAIRS=${2:-2}
FLAGS="--train_fraction 0.0117 --do_eval false --eval_strategy no --save_strategy no --num_samples 0 --report_to none"
export SQUAD_DIR=${SQUAD_DIR:-$(realpath ../shared/squad)}

bare() {  # typed as in the README: no thread flags, no Hub settings, no OMP_NUM_THREADS
  env -u HF_HUB_OFFLINE -u HF_DATASETS_OFFLINE -u OMP_NUM_THREADS -u TOKENIZERS_PARALLELISM \
    .venv/bin/accelerate launch run_qa.py configs/squad20pct.json $FLAGS \
    --output_dir "runs/bare-vs-make-bare-$1" --results_dir "$OUT/bare-$1"
}
make_train() {
  make train ARGS="$FLAGS --output_dir runs/bare-vs-make-make-$1" RESULTS_DIR="$OUT/make-$1"
}
rm -rf runs/bare-vs-make-*
for ((i = 1; i <= PAIRS; i++)); do
  if ((i % 2)); then bare "$i"; make_train "$i"; else make_train "$i"; bare "$i"; fi
done > "$OUT.log" 2>&1
.venv/bin/python - "$OUT" "$PAIRS" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
def seconds(side, i):
    with open(f"{out}/{side}-{i}/all_results.json") as handle:
        return json.load(handle)["train_runtime"]
rows = [(i, seconds("bare", i), seconds("make", i)) for i in range(1, pairs + 1)]
print("| pair | first | bare (s) | make train (s) | bare / make |\n| ---: | --- | ---: | ---: | ---: |")
for i, b, m in rows:
    print(f"| {i} | {'bare' if i % 2 else 'make'} | {b:.1f} | {m:.1f} | {b / m:.3f} |")
b, m = statistics.mean(r[1] for r in rows), statistics.mean(r[2] for r in rows)
print(f"| mean | | {b:.1f} | {m:.1f} | {b / m:.3f} |")
PY
