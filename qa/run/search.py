"""Hyperparameter search (search_qa.py, `make search`): Trainer.hyperparameter_search with
optuna over the learning rate, warmup and weight decay, each trial scored on the learning-curve
dev questions; the study kept in SQLite so that an interrupted search continues; the trials as a
table and the best as a config that extends the recipe's.

Optuna draws the first half of the trials at random and the rest with its TPE sampler, both
seeded (search_seed): the same trials on every run of the same search."""

import json
import logging
import os
from dataclasses import dataclass, field

from qa.atomic import write_json_atomic, write_text_atomic

logger = logging.getLogger("run_qa.search")  # a child of run_qa's logger: lands in train.log

STUDY_FILE = "optuna.db"  # in the search's output_dir
STUDY_NAME = "search"
TRIALS_TABLE = "trials.md"
TRIALS_FILE = "trials.json"
# What a trial scores: the evaluation after its training, on the eval_questions_during_training
# first dev questions (search_qa.py gives the Trainer only those).
OBJECTIVE = "eval_f1"


@dataclass
class SearchArguments:
    n_trials: int = field(
        default=8,
        metadata={"help": "Trials the search holds when done; a rerun adds only those missing."},
    )
    learning_rate_range: list[float] = field(
        default_factory=lambda: [3e-5, 5e-4],
        metadata={"help": "Low and high learning rate, drawn on a log scale."},
    )
    warmup_range: list[float] = field(
        default_factory=lambda: [0.0, 0.2],
        metadata={"help": "Low and high warmup, as a fraction of the steps (warmup_steps < 1)."},
    )
    weight_decay_range: list[float] = field(
        default_factory=lambda: [0.0, 0.1],
        metadata={"help": "Low and high AdamW weight decay."},
    )
    search_seed: int = field(default=0, metadata={"help": "Seed of optuna's sampler."})
    best_config_base: str = field(
        default="configs/squad20pct.json",
        metadata={"help": "The config the best one extends (its learning rate, warmup and "
                  "weight decay replaced)."},
    )  # fmt: skip
    best_config: str | None = field(
        default=None,
        metadata={"help": "Where to write the best config; output_dir/best_config.json if None."},
    )


def check_search(search: SearchArguments, training_args, source: str) -> None:
    """One line naming the setting, for a search that cannot run as asked."""
    ranges = {
        "learning_rate_range": (search.learning_rate_range, 0.0, None),
        "warmup_range": (search.warmup_range, 0.0, 1.0),
        "weight_decay_range": (search.weight_decay_range, 0.0, None),
    }
    for name, (pair, floor, ceiling) in ranges.items():
        ordered = len(pair) == 2 and pair[0] < pair[1]
        inside = ordered and pair[0] >= floor and (ceiling is None or pair[1] < ceiling)
        if not inside or (name == "learning_rate_range" and pair[0] <= 0):
            bounds = f"above {floor}" if name == "learning_rate_range" else f">= {floor}"
            bounds += f" and below {ceiling}" if ceiling is not None else ""
            raise SystemExit(
                f"error: {source}: {name} is {pair}: it must be two numbers, low < high, "
                f"{bounds}; fix it there or pass --{name} LOW HIGH."
            )
    if search.n_trials < 1:
        raise SystemExit(f"error: {source}: n_trials is {search.n_trials}: it must be >= 1.")
    if training_args.eval_strategy != "no":
        raise SystemExit(
            f"error: {source}: eval_strategy is {training_args.eval_strategy.value!r}: a trial "
            "is scored by one evaluation after its training; set eval_strategy to no."
        )
    if not (training_args.do_train and training_args.do_eval):
        raise SystemExit(f"error: {source}: a search trains and scores: set do_train and do_eval.")


def search_space(search: SearchArguments, trial) -> dict:
    """The TrainingArguments one optuna trial sets (the Trainer's hp_space)."""
    return {
        "learning_rate": trial.suggest_float(
            "learning_rate", *search.learning_rate_range, log=True
        ),
        "warmup_steps": trial.suggest_float("warmup_steps", *search.warmup_range),
        "weight_decay": trial.suggest_float("weight_decay", *search.weight_decay_range),
    }


def trial_score(metrics: dict) -> float:
    """The Trainer's compute_objective: the F1 of the trial's evaluation."""
    return metrics[OBJECTIVE]


def open_study(output_dir: str, search: SearchArguments):
    """The search's optuna study in output_dir/optuna.db, made or continued. A trial left
    running (by a search that was killed, or this one stopped by SIGTERM) is marked failed: it
    never counts as done."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.create_study(direction="maximize", **study_arguments(output_dir, search))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        logger.warning("Trial %d did not finish: marked failed", trial.number)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return study


def study_storage(output_dir: str) -> str:
    return f"sqlite:///{os.path.abspath(os.path.join(output_dir, STUDY_FILE))}"


def sampler(search: SearchArguments):
    import optuna

    startup = max(2, search.n_trials // 2)
    return optuna.samplers.TPESampler(seed=search.search_seed, n_startup_trials=startup)


def study_arguments(output_dir: str, search: SearchArguments) -> dict:
    """The keywords hyperparameter_search passes to optuna.create_study: the same study."""
    return {
        "storage": study_storage(output_dir),
        "study_name": STUDY_NAME,
        "load_if_exists": True,
        "sampler": sampler(search),
    }


def trials_left(study, search: SearchArguments) -> int:
    from optuna.trial import TrialState

    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    return max(0, search.n_trials - done)


def trial_rows(study) -> list[dict]:
    """One dict per trial, in the order they ran."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        seconds = None
        if trial.datetime_start and trial.datetime_complete:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name.lower(),
                **trial.params,
                OBJECTIVE: trial.value,
                "seconds": seconds,
            }
        )
    return rows


def write_trials(output_dir: str, study) -> list[dict]:
    """trials.json and trials.md in output_dir; the rows written."""
    rows = trial_rows(study)
    write_json_atomic(os.path.join(output_dir, TRIALS_FILE), rows)
    header = "| trial | state | learning rate | warmup | weight decay | dev-subset F1 | seconds |"
    lines = [header, "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    best = best_trial_number(study)
    for row in rows:
        mark = " (best)" if row["trial"] == best else ""
        lines.append(
            f"| {row['trial']}{mark} | {row['state']} | {shown(row, 'learning_rate', '.2e')} | "
            f"{shown(row, 'warmup_steps', '.3f')} | {shown(row, 'weight_decay', '.4f')} | "
            f"{shown(row, OBJECTIVE, '.2f')} | {shown(row, 'seconds', '.0f')} |"
        )
    write_text_atomic(os.path.join(output_dir, TRIALS_TABLE), "\n".join(lines) + "\n")
    return rows


def shown(row: dict, key: str, form: str) -> str:
    """A table cell: the value formatted, or "-" where the trial has none (unfinished)."""
    return "-" if row.get(key) is None else format(row[key], form)


def best_trial_number(study) -> int | None:
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial.number


def write_best_config(study, search: SearchArguments, output_dir: str) -> str | None:
    """The best trial's settings as a config extending best_config_base; its path, or None
    while no trial has finished. Its output_dir is runs/<its file's name>, or runs/<the
    search's folder>-best for a file named best_config.json."""
    if best_trial_number(study) is None:
        return None
    path = search.best_config or os.path.join(output_dir, "best_config.json")
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.splitext(os.path.basename(path))[0]
    if name == "best_config":  # runs/search-x/best_config.json -> runs/search-x-best
        name = f"{os.path.basename(os.path.normpath(output_dir))}-best"
    best = study.best_trial
    config = {
        "extends": os.path.relpath(os.path.abspath(search.best_config_base), folder),
        **best.params,  # exact: the config trains as the trial did
        "output_dir": f"runs/{name}",
    }
    os.makedirs(folder, exist_ok=True)
    write_text_atomic(path, json.dumps(config, indent=2) + "\n")
    logger.info(
        "Best of %d trials: trial %d, dev-subset F1 %.2f -> %s",
        len(study.trials),
        best.number,
        best.value,
        path,
    )
    return path
