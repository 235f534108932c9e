"""A run's curves from its log_history.json: training loss and learning rate, dev scores.

Writes training_curves.png and dev_scores.png into the folder (or another). run_qa.py calls this
at the end of every run, so the plots sit beside the metrics they come from; tools/plot_qa.py (make
plots) draws any run folder again. The same numbers go to TensorBoard while training (report_to
"tensorboard"); these PNGs are for READMEs and model cards.
"""

import json
import os

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402

from qa.atomic import atomic_path  # noqa: E402
from qa.scoring.metric import TRAINING_EVAL_PREFIX  # noqa: E402

SCORE_KEYS = [  # (logged key, label): the SQuAD metric's dev scores as the Trainer logs them
    ("eval_exact_match", "EM"),
    ("eval_exact", "EM"),  # the SQuAD 2.0 name
    ("eval_f1", "F1"),
    ("eval_HasAns_f1", "HasAns F1"),
    ("eval_NoAns_f1", "NoAns F1"),
    ("eval_best_f1", "best F1 (tuned threshold)"),
]
SUBSET_PREFIX = (
    f"{TRAINING_EVAL_PREFIX}_"  # evaluations on the first N dev questions while training
)


class PlotError(ValueError):
    pass


def read_log_history(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, "log_history.json")
    try:
        with open(path, encoding="utf-8") as f:
            history = json.load(f)
    except FileNotFoundError:
        raise PlotError(
            f"{path} not found: give a folder written by run_qa.py (a run or its results copy)."
        ) from None
    except json.JSONDecodeError as err:
        raise PlotError(f"{path} is not valid JSON ({err}): was the run interrupted?") from None
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise PlotError(f"{path} should hold a list of logged dicts, as the Trainer writes it.")
    return history


def series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    rows = [row for row in history if key in row and "step" in row]
    return [row["step"] for row in rows], [row[key] for row in rows]


def save(figure, path: str) -> str:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def draw_training_curves(history: list[dict], path: str, title: str) -> str | None:
    steps, loss = series(history, "loss")
    if not steps:
        return None  # an evaluation-only run
    lr_steps, lr = series(history, "learning_rate")
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    top.plot(steps, loss, color="tab:blue")
    top.set_ylabel("training loss")
    top.set_title(title)
    top.grid(alpha=0.3)
    bottom.plot(lr_steps, lr, color="tab:orange")
    bottom.set_ylabel("learning rate")
    bottom.set_xlabel("optimizer step")
    bottom.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    bottom.grid(alpha=0.3)
    return save(figure, path)


def draw_dev_scores(history: list[dict], path: str, title: str) -> str | None:
    """Dev scores against the step they were measured at: a learning curve on the dev subset
    scored while training (if any), and the whole dev set's scores as stars."""
    curves, stars = {}, {}
    subset = next(
        (row[f"{SUBSET_PREFIX}examples"] for row in history if f"{SUBSET_PREFIX}examples" in row),
        None,
    )
    for key, label in SCORE_KEYS:
        whole = series(history, key)
        if whole[0] and label not in stars:
            stars[label] = whole
        part = series(history, SUBSET_PREFIX + key.removeprefix("eval_"))
        if part[0] and label not in curves:
            curves[label] = part
    if not (curves or stars):
        return None
    if not curves:  # one evaluation, no learning curve (an eval-only run): a bar per score
        return draw_score_bars(
            {label: values[-1] for label, (_, values) in stars.items()}, path, title
        )
    figure, axis = plt.subplots(figsize=(7, 3.8))
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for label in dict.fromkeys([*curves, *stars]):
        color = next(colors)
        if label in curves:
            steps, values = curves[label]
            axis.plot(
                steps,
                values,
                marker="o",
                color=color,
                alpha=0.8,
                label=f"{label}, first {subset:,} dev questions (last {values[-1]:.1f})",
            )
        if label in stars:
            steps, values = stars[label]
            axis.plot(
                steps,
                values,
                marker="*",
                markersize=14,
                linestyle="none",
                color=color,
                label=f"{label}, whole dev set: {values[-1]:.2f}",
            )
    axis.set_ylim(0, 100)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("dev score (%)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    return save(figure, path)


def draw_score_bars(scores: dict[str, float], path: str, title: str) -> str:
    figure, axis = plt.subplots(figsize=(7, 0.6 + 0.45 * len(scores)))
    labels = list(scores)[::-1]  # first score on top
    bars = axis.barh(labels, [scores[label] for label in labels], color="tab:blue", alpha=0.8)
    axis.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
    axis.set_xlim(0, 100)
    axis.set_xlabel("dev score (%)")
    axis.set_title(title)
    axis.grid(axis="x", alpha=0.3)
    return save(figure, path)


def draw_run_plots(run_dir: str, out_dir: str | None = None) -> list[str]:
    """The PNG files written for one run folder (none for a run that logged nothing to draw)."""
    history = read_log_history(run_dir)
    out_dir = out_dir or run_dir
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(os.path.normpath(run_dir))
    written = [
        draw_training_curves(history, os.path.join(out_dir, "training_curves.png"), name),
        draw_dev_scores(history, os.path.join(out_dir, "dev_scores.png"), f"{name}: dev set"),
    ]
    return [path for path in written if path]
