"""make search: Trainer.hyperparameter_search with optuna, its table, its best config, and a
search that goes on where it was stopped (search_qa.py, qa/run/search.py)."""

import json
import signal
import time
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers.recipe_runner import ROOT, needs_squad, run_qa, start_qa
from qa.run.config import parse_arguments, parse_arguments_with
from qa.run.search import (
    STUDY_NAME,
    SearchArguments,
    check_search,
    search_space,
    study_storage,
    write_best_config,
    write_trials,
)

SMOKE = ROOT / "tests" / "configs" / "smoke.json"


def study_in(folder, trials=()):
    """An optuna study in folder/optuna.db holding `trials`: (state name, params, value)."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        storage=study_storage(str(folder)), study_name=STUDY_NAME, direction="maximize"
    )
    for state, params, value in trials:
        study.add_trial(
            create_trial(
                state=TrialState[state],
                params=params,
                distributions={k: FloatDistribution(0.0, 1.0) for k in params},
                value=value,
            )
        )
    return study


PARAMS = [
    {"learning_rate": 1e-4, "warmup_steps": 0.1, "weight_decay": 0.01},
    {"learning_rate": 3e-4, "warmup_steps": 0.05, "weight_decay": 0.02},
]


def test_the_table_marks_the_best_trial_and_shows_unfinished_ones(tmp_path):
    study = study_in(
        tmp_path,
        [("COMPLETE", PARAMS[0], 61.5), ("FAIL", {}, None), ("COMPLETE", PARAMS[1], 64.25)],
    )
    rows = write_trials(str(tmp_path), study)
    assert [(r["trial"], r["state"], r["eval_f1"]) for r in rows] == [
        (0, "complete", 61.5),
        (1, "fail", None),
        (2, "complete", 64.25),
    ]
    assert json.loads((tmp_path / "trials.json").read_text()) == rows
    table = (tmp_path / "trials.md").read_text().splitlines()
    assert table[2].startswith("| 0 | complete | 1.00e-04 | 0.100 | 0.0100 | 61.50 |")
    assert table[3].startswith("| 1 | fail | - | - | - | - |")
    assert table[4].startswith("| 2 (best) | complete | 3.00e-04 | 0.050 | 0.0200 | 64.25 |")


def test_the_best_config_extends_the_base_from_wherever_it_is_written(tmp_path):
    study = study_in(tmp_path, [("COMPLETE", PARAMS[0], 61.5), ("COMPLETE", PARAMS[1], 64.25)])
    base = ROOT / "configs" / "squad20pct.json"
    search = SearchArguments(best_config_base=str(base), best_config=str(tmp_path / "c" / "x.json"))
    path = write_best_config(study, search, str(tmp_path))
    written = json.loads((tmp_path / "c" / "x.json").read_text())
    assert path == str(tmp_path / "c" / "x.json")
    assert written["output_dir"] == "runs/x" and written["learning_rate"] == 3e-4
    # As run_qa.py reads it: the base's settings, the best trial's three replacing theirs.
    args = parse_arguments([path])
    assert args.data.train_fraction == 0.2 and args.training.output_dir == "runs/x"
    training = args.training
    assert (training.learning_rate, training.warmup_steps, training.weight_decay) == (
        3e-4,
        0.05,
        0.02,
    )


def test_a_best_config_json_trains_into_the_searchs_name(tmp_path):
    study = study_in(tmp_path / "search-x", [("COMPLETE", PARAMS[0], 61.5)])
    for where in (None, str(tmp_path / "results" / "best_config.json")):
        path = write_best_config(
            study, SearchArguments(best_config=where), str(tmp_path / "search-x")
        )
        assert json.loads(Path(path).read_text())["output_dir"] == "runs/search-x-best"


def test_no_best_config_before_a_trial_has_finished(tmp_path):
    study = study_in(tmp_path, [("FAIL", {}, None)])
    assert write_best_config(study, SearchArguments(), str(tmp_path)) is None
    assert not (tmp_path / "best_config.json").exists()


def test_every_drawn_value_lies_in_its_range():
    import optuna

    search = SearchArguments(learning_rate_range=[1e-5, 1e-3], warmup_range=[0.0, 0.3])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [search_space(search, study.ask()) for _ in range(50)]
    for values in drawn:
        assert 1e-5 <= values["learning_rate"] <= 1e-3
        assert 0.0 <= values["warmup_steps"] <= 0.3 and 0.0 <= values["weight_decay"] <= 0.1
    # Drawn on a log scale: a tenth of the draws at least below 1e-4, a tenth of the range.
    assert sum(v["learning_rate"] < 1e-4 for v in drawn) >= 15


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learning_rate_range": [5e-4, 3e-5]}, "learning_rate_range is [0.0005, 3e-05]: it must"),
        ({"learning_rate_range": [0.0, 1e-3]}, "learning_rate_range is [0.0, 0.001]: it must"),
        ({"warmup_range": [0.0, 1.5]}, "warmup_range is [0.0, 1.5]: it must be two numbers"),
        ({"weight_decay_range": [0.1]}, "weight_decay_range is [0.1]: it must be two numbers"),
        ({"n_trials": 0}, "n_trials is 0: it must be >= 1"),
        ({"eval_strategy": "steps"}, "eval_strategy is 'steps': a trial is scored by one"),
        ({"do_eval": False}, "a search trains and scores: set do_train and do_eval"),
    ],
)
def test_a_search_that_cannot_run_as_asked_is_one_line(change, message):
    from transformers.trainer_utils import IntervalStrategy

    names = {f.name for f in fields(SearchArguments)}
    search = SearchArguments(**{k: v for k, v in change.items() if k in names})
    training = SimpleNamespace(
        eval_strategy=IntervalStrategy(change.get("eval_strategy", "no")),
        do_train=True,
        do_eval=change.get("do_eval", True),
    )
    with pytest.raises(SystemExit, match=r"^error: search.json: ") as stopped:
        check_search(search, training, "search.json")
    assert message in stopped.value.code and "\n" not in stopped.value.code


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("search-*.json")), ids=str)
def test_every_shipped_search_config_parses_and_can_run(path):
    args, (search,) = parse_arguments_with([str(path)], (SearchArguments,), "search_qa.py")
    check_search(search, args.training, str(path))
    assert (ROOT / search.best_config_base).is_file()
    assert args.data.train_fraction < 0.2 and args.training.save_strategy == "no"


def trials(folder) -> list[dict]:
    return json.loads((folder / "trials.json").read_text())


def completed_in(folder) -> int:
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=STUDY_NAME, storage=study_storage(str(folder)))
    return len(study.get_trials(states=(TrialState.COMPLETE,)))


@needs_squad
@pytest.mark.slow
def test_a_search_stopped_by_a_kill_or_ctrl_c_goes_on_where_it_stopped(tmp_path):
    """A kill left trial 0 running; Ctrl-C stops the next search after a finished trial; the
    same command then runs only the trials still missing, and writes the table and config."""
    out = tmp_path / "search"
    study_in(out).ask()  # a trial a killed search left running
    (out / "train.log").write_text("")  # and the log it had begun
    flags = [
        "--output_dir", out, "--features_cache_dir", tmp_path / "cache", "--eval_strategy", "no",
        "--report_to", "none", "--best_config_base", SMOKE, "--n_trials", 3,
    ]  # fmt: skip
    search = start_qa(*flags, log_path=tmp_path / "first.log", script="search_qa.py")
    deadline = time.time() + 300
    while completed_in(out) < 1 and search.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    search.send_signal(signal.SIGINT)
    assert search.wait(timeout=120) == 130, (tmp_path / "first.log").read_text()[-3000:]
    first = trials(out)
    assert first[0]["state"] == "fail"  # the killed search's trial never counts
    assert {row["state"] for row in first} <= {"complete", "fail"}
    done = [row for row in first if row["state"] == "complete"]
    assert 1 <= len(done) < 3

    run_qa(*flags, script="search_qa.py")  # the same command
    second = trials(out)
    assert [row for row in second if row["state"] == "complete"][: len(done)] == done
    assert completed_in(out) == 3
    best = max((row for row in second if row["state"] == "complete"), key=lambda r: r["eval_f1"])
    config = json.loads((out / "best_config.json").read_text())
    assert config["learning_rate"] == best["learning_rate"]
    assert (out / config["extends"]).resolve() == SMOKE
    assert "(best)" in (out / "trials.md").read_text()
