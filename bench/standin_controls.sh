#!/usr/bin/env bash
# The SQuAD 2.0 stand-in controls (docs/squad-v2.md) against the x3 run, each on the same budget
# and threshold rule, then two tables: honest held-out F1, HasAns/NoAns F1, null-score AUC, and
# each model's F1 minus the baseline's with a paired article-bootstrap interval; the baseline is
# x3 in OUT_DIR/comparison.md and the copies control in OUT_DIR/comparison-vs-copies.md (the
# copies differ from the other two controls only in what the added unanswerables are).
#   bash bench/standin_controls.sh OUT_DIR [NAME ...]
# NAME: squad-v2-standin-{copies,other-paragraph,perturbed} (all three by default),
# squad-v2-standin-similar-paragraph (hard negatives), squad-v2-standin-perturbed-similar (half each) or
# squad-v2-devsplit-x3, each configs/NAME.json, its small outputs in OUT_DIR/NAME. Unless x3 is
# run into OUT_DIR, the committed x3 run (results/runs/squad-v2-devsplit-x3) is the baseline.
# A name whose folder already holds a finished run is not trained again, so the runs can be
# spread over several calls (a GPU session's time limit, say); the tables are written once a
# control is there. About 2 minutes a run on one H200; 20 minutes to hours each on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/standin_controls.sh OUT_DIR [NAME ...]}
shift
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(squad-v2-standin-copies squad-v2-standin-other-paragraph
  squad-v2-standin-perturbed)
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
PYTHON=${PYTHON:-python}
"$PYTHON" -m qa.data.split --v1_outside
"$PYTHON" -m qa.data.standin
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
X3=squad-v2-devsplit-x3
models=()
if [ -f "$OUT/$X3/all_results.json" ]; then
  models+=(--model "$X3=$OUT/$X3")
else
  committed=results/runs/$X3
  models+=(--model "$X3=$committed/eval-heldout+$committed/eval-tune")
fi
controls=0
for folder in "$OUT"/squad-v2-standin-*/; do
  name=$(basename "$folder")
  if [ -f "$folder/all_results.json" ]; then
    models+=(--model "$name=${folder%/}")
    controls=$((controls + 1))
  fi
done
if [ $controls -ge 1 ]; then
  "$PYTHON" tools/compare_qa.py --out "$OUT/comparison" --baseline "$X3" "${models[@]}"
fi
copies=squad-v2-standin-copies
if [ -f "$OUT/$copies/all_results.json" ] && [ $controls -ge 2 ]; then
  "$PYTHON" tools/compare_qa.py --out "$OUT/comparison-vs-copies" --baseline "$copies" "${models[@]}"
fi
