#!/usr/bin/env bash
# The SQuAD 2.0 stand-in controls (docs/squad-v2.md) against the x3 run, each on the same budget
# and threshold rule, then one table: honest held-out F1, HasAns/NoAns F1, null-score AUC, and
# each control's F1 minus x3's with a paired article-bootstrap interval.
#   bash bench/standin_controls.sh OUT_DIR [NAME ...]
# NAME: squad-v2-devsplit-x3 and squad-v2-standin-{copies,other-paragraph,perturbed} (all four by
# default), each configs/NAME.json, its small outputs in OUT_DIR/NAME. A name whose folder
# already holds a finished run is not trained again, so the runs can be spread over several
# calls (a GPU session's time limit, say); the table is written once x3 and a control are there.
# About 2 minutes a run on one H200; an hour or more each on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/standin_controls.sh OUT_DIR [NAME ...]}
shift
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(squad-v2-devsplit-x3 squad-v2-standin-copies
  squad-v2-standin-other-paragraph squad-v2-standin-perturbed)
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
PYTHON=${PYTHON:-python}
"$PYTHON" -m qa.split --v1_outside
"$PYTHON" -m qa.standin
mkdir -p "$OUT"
for name in "${NAMES[@]}"; do
  if [ -f "$OUT/$name/all_results.json" ]; then
    echo "$name: finished in $OUT/$name, not run again"
    continue
  fi
  "$PYTHON" -m accelerate.commands.launch --num_processes 1 --num_machines 1 \
    --mixed_precision no --dynamo_backend no run_qa.py "configs/$name.json" \
    --output_dir "runs/controls/$name" --results_dir "$OUT/$name" --overwrite_output_dir true
done
models=()
for folder in "$OUT"/squad-v2-*/; do
  name=$(basename "$folder")
  [ -f "$folder/all_results.json" ] && models+=(--model "$name=${folder%/}")
done
if [ -f "$OUT/squad-v2-devsplit-x3/all_results.json" ] && [ ${#models[@]} -ge 4 ]; then
  "$PYTHON" tools/compare_qa.py --out "$OUT/comparison" --baseline squad-v2-devsplit-x3 "${models[@]}"
fi
