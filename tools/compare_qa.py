"""SQuAD 2.0 models side by side on the same held-out questions, from their saved predictions.

    python tools/compare_qa.py --out results/runs/squad-v2-devsplit/comparison \
        --model "SQuAD 1.1 model=results/runs/squad20pct/eval-dev-v2.0" \
        --model "SQuAD 2.0 model=results/runs/squad-v2-devsplit/eval-heldout+results/runs/squad-v2-devsplit/eval-tune"

A model is a folder (or `held-out folder+tuning folder`) with null_odds.json and
span_predictions.json (each question's best real span; predictions.json where that is missing)
covering the questions scored. A training run's folder (`--results_dir`) serves alone: its
tune_null_odds.json and tune_span_predictions.json are the tuning part. Each model is scored twice on the held-out part:

* honest: at the threshold tuned on the tuning part (the best F1 there), as a user would;
* optimistic: the official `best_*`, its threshold chosen on the held-out questions themselves;
* with `--cross_fit`, cross-fitted: each held-out article at the threshold best on every other
  article of both parts, never its own (more questions to tune on, still honest).

Each model's honest row also gives the AUC of its null odds (how well they rank unanswerable above
answerable questions, whatever the threshold), and with `--baseline NAME` its honest F1 minus that
model's, with a 95% interval from a paired bootstrap over the held-out articles (qa/scoring/abstention.py).

The always-"no answer" floor is the first row. Threshold and odds are the null score minus the
best span score, the quantity run_qa.py tunes and tools/predict_qa.py applies.
"""

import argparse
import math
import os
import sys

import numpy as np

from qa.atomic import write_json_atomic, write_text_atomic
from qa.data.load import SquadDataError, load_squad_file, resolve_data_path
from qa.scoring.abstention import RESAMPLES, null_score_auc, paired_article_bootstrap
from qa.scoring.metric import load_metric_functions
from qa.user_files import read_json_file

HELDOUT = "$SQUAD_V2_SPLIT_DIR/heldout.json"
TUNE = "$SQUAD_V2_SPLIT_DIR/tune.json"
KEYS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")
TUNED_ROW = "threshold from the tuning part"
CROSS_FIT_ROW = "threshold by leaving its article out"


def read_json(path: str) -> dict:
    try:
        return read_json_file(path, fix="Evaluate the model again to rewrite it.")
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def load_predictions(folder: str, prefix: str = "") -> tuple[dict, dict]:
    """({id: best span text}, {id: null odds}) saved by a SQuAD 2.0 evaluation in `folder`;
    prefix "tune_" reads the tuning part a training run scored (tune_null_odds.json, ...)."""
    spans = os.path.join(folder, f"{prefix}span_predictions.json")
    if not os.path.isfile(spans):  # older runs: the answer at threshold 0 stands in for the span
        spans = os.path.join(folder, f"{prefix}predictions.json")
    return read_json(spans), read_json(os.path.join(folder, f"{prefix}null_odds.json"))


def tune_prefix(heldout_dir: str, tune_dir: str) -> str:
    """A training run's results folder holds both parts: the held-out one as the evaluation's
    files, the tuning one as tune_*. A folder given once without tune_* files (a model scored on
    the whole dev set) serves both parts as is."""
    same = os.path.normpath(heldout_dir) == os.path.normpath(tune_dir)
    return "tune_" if same and os.path.isfile(os.path.join(tune_dir, "tune_null_odds.json")) else ""


def references(path: str) -> list[dict]:
    try:
        examples = load_squad_file(resolve_data_path(path), allow_unanswerable=True)
    except SquadDataError as err:
        raise SystemExit(f"error: {err}") from None
    return [
        {"id": i, "answers": a, "title": t}
        for i, a, t in zip(examples["id"], examples["answers"], examples["title"])
    ]


def metric_references(refs: list[dict]) -> list[dict]:
    return [{"id": r["id"], "answers": r["answers"]} for r in refs]


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
        predictions,
        metric_references(refs),
        version_2_with_negative=True,
        no_answer_threshold=threshold,
    )


def raw_scores(spans: dict, refs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(exact, F1) of each question's best span, 0 to 1, as if it always answered."""
    squad = load_metric_functions()
    pairs = [
        squad.score_question(spans[r["id"]], squad.gold_answers(r["answers"]["text"], True), True)
        for r in refs
    ]
    return np.array([p[0] for p in pairs], dtype=float), np.array([p[1] for p in pairs])


def question_f1(spans: dict, odds: dict, refs: list[dict], threshold: float) -> np.ndarray:
    """Each question's F1 (0 to 1) at `threshold`, by the official rules: their mean is the F1
    that score() reports."""
    squad = load_metric_functions()
    has_answer = np.array([bool(r["answers"]["text"]) for r in refs])
    na = np.array([odds[r["id"]] for r in refs], dtype=float)
    return squad.apply_no_answer_threshold(raw_scores(spans, refs)[1], na, has_answer, threshold)


def cross_fitted(held: tuple[dict, dict], tuned: tuple[dict, dict], heldout_refs, tune_refs):
    """(scores, per-question F1, {article: threshold}): each held-out article scored at the
    threshold that is best on every other article of both parts (leave one article out). No
    question is scored at a threshold its own article helped choose, and each threshold is tuned
    on about three times the questions of the tuning part alone."""
    squad = load_metric_functions()
    refs = tune_refs + heldout_refs
    spans, odds = {**tuned[0], **held[0]}, {**tuned[1], **held[1]}
    exact, f1 = raw_scores(spans, refs)
    na = np.array([odds[r["id"]] for r in refs], dtype=float)
    has_answer = np.array([bool(r["answers"]["text"]) for r in refs])
    answered = np.array([bool(spans[r["id"]]) for r in refs])
    titles = np.array([r["title"] for r in refs])
    held_out = np.arange(len(refs)) >= len(tune_refs)
    out_exact, out_f1 = np.zeros(len(refs)), np.zeros(len(refs))
    thresholds = {}
    for title in dict.fromkeys(titles[held_out]):
        rest, own = titles != title, titles == title
        _, threshold = squad.find_best_threshold(
            f1[rest], na[rest], has_answer[rest], answered[rest]
        )
        thresholds[str(title)] = threshold
        for raw, out in ((exact, out_exact), (f1, out_f1)):
            out[own] = squad.apply_no_answer_threshold(
                raw[own], na[own], has_answer[own], threshold
            )
    has, per_question = has_answer[held_out], out_f1[held_out]
    scores = {
        "exact": 100.0 * out_exact[held_out].mean(),
        "f1": 100.0 * per_question.mean(),
        "HasAns_exact": 100.0 * out_exact[held_out][has].mean(),
        "HasAns_f1": 100.0 * per_question[has].mean(),
        "NoAns_exact": 100.0 * out_exact[held_out][~has].mean(),
        "NoAns_f1": 100.0 * per_question[~has].mean(),
    }
    return scores, per_question, thresholds


def compare(
    models: dict[str, tuple[str, str]],
    heldout: str = HELDOUT,
    tune: str = TUNE,
    baseline: str | None = None,
    cross_fit: bool = False,
) -> dict:
    """{row name: scores}: the floor, then each model's honest and optimistic scores; with
    cross_fit, also each model's held-out scores at thresholds chosen leaving one article out."""
    if baseline is not None and baseline not in models:
        raise SystemExit(f"error: --baseline {baseline!r} is not one of the --model names.")
    heldout_refs, tune_refs = references(heldout), references(tune)
    floor = score(
        {r["id"]: "" for r in heldout_refs},
        {r["id"]: math.inf for r in heldout_refs},
        heldout_refs,
        0.0,
    )
    rows = {"always no answer": {k: floor[k] for k in KEYS if k in floor}}
    has_answer = np.array([bool(r["answers"]["text"]) for r in heldout_refs])
    per_question = {}
    for name, (heldout_dir, tune_dir) in models.items():
        held_spans, held_odds = load_predictions(heldout_dir)
        tune_spans, tune_odds = load_predictions(tune_dir, tune_prefix(heldout_dir, tune_dir))
        tuned = score(tune_spans, tune_odds, tune_refs, 0.0)["best_f1_thresh"]
        honest = score(held_spans, held_odds, heldout_refs, tuned)
        per_question[name, TUNED_ROW] = question_f1(held_spans, held_odds, heldout_refs, tuned)
        odds = np.array([held_odds[r["id"]] for r in heldout_refs], dtype=float)
        rows[f"{name}, {TUNED_ROW}"] = {
            **{k: honest[k] for k in KEYS},
            "threshold": tuned,
            "null_auc": null_score_auc(odds, has_answer),
        }
        rows[f"{name}, best threshold on held-out (optimistic)"] = {
            "exact": honest["best_exact"],
            "f1": honest["best_f1"],
            "threshold": honest["best_f1_thresh"],
        }
        if cross_fit:
            fitted = cross_fitted(
                (held_spans, held_odds), (tune_spans, tune_odds), heldout_refs, tune_refs
            )
            rows[f"{name}, {CROSS_FIT_ROW}"] = {
                **fitted[0],
                "thresholds": fitted[2],
                # What the rule itself gains, the model held fixed.
                "vs_tuning_part": paired_article_bootstrap(
                    fitted[1], per_question[name, TUNED_ROW], [r["title"] for r in heldout_refs]
                ),
            }
            per_question[name, CROSS_FIT_ROW] = fitted[1]
    result = {"questions": len(heldout_refs), "rows": rows}
    if baseline is not None:
        articles = [r["title"] for r in heldout_refs]
        result["baseline"] = baseline
        for name, row in per_question:
            if name != baseline:
                paired = paired_article_bootstrap(
                    per_question[name, row], per_question[baseline, row], articles
                )
                rows[f"{name}, {row}"]["vs_baseline"] = paired
    return result


def render_markdown(result: dict) -> str:
    columns = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "threshold")
    baseline = result.get("baseline")
    cross_fit = any("vs_tuning_part" in values for values in result["rows"].values())
    extra = ["null AUC"] + ([f"F1 minus {baseline} [95% interval]"] if baseline else [])
    extra += ["F1 minus the same model's tuning-part threshold [95%]"] if cross_fit else []
    lines = [
        f"Held-out part of the dev-v2.0 split: {result['questions']} questions.",
        "",
        "| | " + " | ".join([*(c.replace("_", " ") for c in columns), *extra]) + " |",
        "| --- |" + " ---: |" * (len(columns) + len(extra)),
    ]
    for name, values in result["rows"].items():
        cells = [f"{values[c]:.2f}" if c in values else "" for c in columns]
        cells.append(f"{values['null_auc']:.3f}" if "null_auc" in values else "")
        for shown, key in ((baseline, "vs_baseline"), (cross_fit, "vs_tuning_part")):
            if shown:
                paired = values.get(key)
                cells.append(
                    f"{paired['difference']:+.2f} [{paired['low']:+.2f}, {paired['high']:+.2f}]"
                    if paired
                    else ""
                )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if baseline or cross_fit:
        lines += ["", f"Intervals: {RESAMPLES_NOTE}"]
    return "\n".join(lines) + "\n"


RESAMPLES_NOTE = (
    f"paired bootstrap over the held-out articles ({RESAMPLES:,} draws of the articles with "
    "replacement, seed 0; both models scored on each draw), the 2.5th and 97.5th percentiles."
)


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
    parser.add_argument("--baseline", help="a --model NAME: the others' F1 minus its, paired")
    parser.add_argument("--out", help="write OUT.json and OUT.md")
    parser.add_argument(
        "--cross_fit",
        action="store_true",
        help="also score each held-out article at the threshold best on every other article "
        "of both parts",
    )
    args = parser.parse_args(argv)
    models = dict(map(parse_model, args.model))
    result = compare(models, args.heldout, args.tune, args.baseline, args.cross_fit)
    markdown = render_markdown(result)
    print(markdown)
    if args.out:
        write_json_atomic(args.out + ".json", result)
        write_text_atomic(args.out + ".md", markdown)
        # What was compared, so that a test can recompute the table from the same folders.
        models_run = {k: list(v) for k, v in models.items()}
        command = {"models": models_run, "baseline": args.baseline}
        if args.cross_fit:
            command["cross_fit"] = True
        write_json_atomic(args.out + "-command.json", command)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
