"""SQuAD 2.0 models side by side on the same held-out questions, from their saved predictions.

    python tools/compare_qa.py --out results/runs/squad-v2-devsplit/comparison \
        --model "SQuAD 1.1 model=results/runs/squad20pct/eval-dev-v2.0" \
        --model "SQuAD 2.0 model=results/runs/squad-v2-devsplit/eval-heldout+results/runs/squad-v2-devsplit/eval-tune"

A model is a folder (or `held-out folder+tuning folder`) with null_odds.json and
span_predictions.json (each question's best real span; predictions.json where that is missing)
covering the questions scored. Each model is scored twice on the held-out part:

* honest: at the threshold tuned on the tuning part (the best F1 there), as a user would;
* optimistic: the official `best_*`, its threshold chosen on the held-out questions themselves.

The always-"no answer" floor is the first row. Threshold and odds are the null score minus the
best span score, the quantity run_qa.py tunes and tools/predict_qa.py applies.
"""

import argparse
import math
import os
import sys

from qa.atomic import write_json_atomic, write_text_atomic
from qa.metric import load_metric_functions
from qa.squad_data import SquadDataError, load_squad_file, resolve_data_path
from qa.user_files import read_json_file

HELDOUT = "$SQUAD_V2_SPLIT_DIR/heldout.json"
TUNE = "$SQUAD_V2_SPLIT_DIR/tune.json"
KEYS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")


def read_json(path: str) -> dict:
    try:
        return read_json_file(path, fix="Evaluate the model again to rewrite it.")
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def load_predictions(folder: str) -> tuple[dict, dict]:
    """({id: best span text}, {id: null odds}) saved by a SQuAD 2.0 evaluation in `folder`."""
    spans = os.path.join(folder, "span_predictions.json")
    if not os.path.isfile(spans):  # older runs: the answer at threshold 0 stands in for the span
        spans = os.path.join(folder, "predictions.json")
    return read_json(spans), read_json(os.path.join(folder, "null_odds.json"))


def references(path: str) -> list[dict]:
    try:
        examples = load_squad_file(resolve_data_path(path), allow_unanswerable=True)
    except SquadDataError as err:
        raise SystemExit(f"error: {err}") from None
    return [{"id": i, "answers": a} for i, a in zip(examples["id"], examples["answers"])]


def score(spans: dict, odds: dict, refs: list[dict], threshold: float) -> dict:
    """The official 2.0 scores of these questions at `threshold` (no answer where odds > it)."""
    missing = [r["id"] for r in refs if r["id"] not in spans or r["id"] not in odds]
    if missing:
        raise SystemExit(
            f"error: {len(missing)} questions have no saved prediction, e.g. {missing[:3]}: "
            "evaluate the model on these questions first."
        )
    predictions = [
        {"id": r["id"], "prediction_text": spans[r["id"]], "no_answer_probability": odds[r["id"]]}
        for r in refs
    ]
    squad = load_metric_functions()
    return squad.compute_squad(
        predictions, refs, version_2_with_negative=True, no_answer_threshold=threshold
    )


def compare(models: dict[str, tuple[str, str]], heldout: str = HELDOUT, tune: str = TUNE) -> dict:
    """{row name: scores}: the floor, then each model's honest and optimistic scores."""
    heldout_refs, tune_refs = references(heldout), references(tune)
    floor = score(
        {r["id"]: "" for r in heldout_refs}, {r["id"]: math.inf for r in heldout_refs},
        heldout_refs, 0.0,
    )  # fmt: skip
    rows = {"always no answer": {k: floor[k] for k in KEYS if k in floor}}
    for name, (heldout_dir, tune_dir) in models.items():
        held_spans, held_odds = load_predictions(heldout_dir)
        tune_spans, tune_odds = load_predictions(tune_dir)
        tuned = score(tune_spans, tune_odds, tune_refs, 0.0)["best_f1_thresh"]
        honest = score(held_spans, held_odds, heldout_refs, tuned)
        rows[f"{name}, threshold from the tuning part"] = {
            **{k: honest[k] for k in KEYS},
            "threshold": tuned,
        }
        rows[f"{name}, best threshold on held-out (optimistic)"] = {
            "exact": honest["best_exact"],
            "f1": honest["best_f1"],
            "threshold": honest["best_f1_thresh"],
        }
    return {"questions": len(heldout_refs), "rows": rows}


def render_markdown(result: dict) -> str:
    columns = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "threshold")
    lines = [
        f"Held-out part of the dev-v2.0 split: {result['questions']} questions.",
        "",
        "| | " + " | ".join(c.replace("_", " ") for c in columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for name, values in result["rows"].items():
        cells = [f"{values[c]:.2f}" if c in values else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_model(text: str) -> tuple[str, tuple[str, str]]:
    name, sep, folders = text.partition("=")
    if not sep or not name or not folders:
        raise SystemExit(f"error: --model {text!r}: write NAME=FOLDER or NAME=HELDOUT+TUNE.")
    heldout_dir, _, tune_dir = folders.partition("+")
    return name, (heldout_dir, tune_dir or heldout_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=FOLDER[+TUNE_FOLDER]")
    parser.add_argument("--heldout", default=HELDOUT)
    parser.add_argument("--tune", default=TUNE)
    parser.add_argument("--out", help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    models = dict(map(parse_model, args.model))
    result = compare(models, args.heldout, args.tune)
    markdown = render_markdown(result)
    print(markdown)
    if args.out:
        write_json_atomic(args.out + ".json", result)
        write_text_atomic(args.out + ".md", markdown)
        # What was compared, so that a test can recompute the table from the same folders.
        write_json_atomic(args.out + "-command.json", {k: list(v) for k, v in models.items()})
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
