"""The Trainer's usual arguments (load_best_model_at_end, metric_for_best_model, the accumulation
steps, max_steps, save_only_model) either work with this recipe or are refused at start, in one
line that says what to use instead (docs/using.md, "The Trainer's usual arguments")."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers.recipe_runner import SMOKE, needs_squad, refusal, run_qa
from qa.machine.flops import training_flops, utilisation
from qa.run import resume
from qa.run.callbacks import EpochsTrained
from qa.run.card import card_settings
from qa.run.config import parse_arguments
from test_reliability import killed_after_checkpoint


class Tiny:  # a model config small enough to count its FLOPs by hand
    hidden_size, intermediate_size, num_hidden_layers = 4, 8, 2


BEST = ["--load_best_model_at_end", "true", "--save_strategy", "steps", "--save_steps", "2"]


def parsed(*flags):
    return parse_arguments([str(SMOKE), *map(str, flags)])


def parse_refusal(*flags) -> str:
    with pytest.raises(SystemExit) as stopped:
        parsed(*flags)
    message = str(stopped.value.code)
    assert message.startswith("error: ") and "\n" not in message
    return message


@pytest.mark.parametrize(
    "given, logged",
    [
        ("f1", "eval_subset_f1"),
        ("eval_f1", "eval_subset_f1"),
        ("exact_match", "eval_subset_exact_match"),
    ],
)
def test_the_best_model_is_chosen_by_the_learning_curve_score(given, logged):
    """The learning curve logs eval_subset_*; the Trainer looked for eval_f1 and stopped with a
    KeyError at the first evaluation, after the first steps of training."""
    training_args = parsed(*BEST, "--metric_for_best_model", given).training
    assert training_args.metric_for_best_model == logged
    assert training_args.greater_is_better


def test_without_a_learning_curve_subset_the_whole_dev_set_scores():
    _, _, _, training_args = parsed(*BEST, "--metric_for_best_model", "f1",
                                 "--eval_questions_during_training", 0)  # fmt: skip
    assert training_args.metric_for_best_model == "eval_f1"


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([], "metric_for_best_model is 'loss' (the Trainer default)"),  # no loss is computed
        (["--metric_for_best_model", "exact"], "one of exact_match, f1"),  # a SQuAD 2.0 name
        (["--metric_for_best_model", "f1", "--version_2_with_negative", "true"], None),
    ],
)
def test_a_metric_the_evaluations_do_not_log_is_refused(flags, expected):
    if expected is None:
        assert parsed(*BEST, *flags).training.metric_for_best_model == "eval_subset_f1"
    else:
        assert expected in parse_refusal(*BEST, *flags)


def test_the_trainers_own_refusals_are_one_line():
    """load_best_model_at_end with save_strategy no: TrainingArguments' message spans lines."""
    message = parse_refusal("--load_best_model_at_end", "true")
    assert "save and eval strategy to match" in message and "Save strategy" in message


def test_mfu_counts_the_epochs_trained_not_num_train_epochs():
    """max_steps stops part-way through an epoch (or runs past one), and a resumed run trains
    only what its checkpoint had left: the FLOPs were those of num_train_epochs whole."""
    trained = EpochsTrained()
    state = SimpleNamespace(epoch=0.0)
    trained.on_train_begin(None, state, None)
    state.epoch = 0.25  # a resume: the Trainer loads the checkpoint's state after on_train_begin
    for epoch in (0.25, 0.5):
        trained.on_step_begin(None, state, None)
        state.epoch = epoch + 0.25
    trained.on_train_end(None, state, None)
    assert trained.epochs == 0.5
    args = SimpleNamespace(process_index=0, num_train_epochs=1.0)
    features = {"length": [3, 5]}
    flops = utilisation(Tiny, features, 1.0, "train_steps", args, False, trained.epochs)
    assert flops["train_steps_model_flops"] == training_flops(Tiny, [3, 5], epochs=0.5)


def test_a_checkpoint_saved_with_save_only_model_is_not_resumed(tmp_path):
    """The Trainer resumed it with a new optimizer, schedule and random state, silently."""
    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"\0" * 8)
    with pytest.raises(SystemExit, match="holds the model only .* leave save_only_model false"):
        resume.refuse_a_model_only_checkpoint(str(checkpoint))
    (checkpoint / "rng_state.pth").write_bytes(b"\0" * 8)  # saved by every whole checkpoint
    resume.refuse_a_model_only_checkpoint(str(checkpoint))


def test_a_resume_keeps_the_score_that_chooses_the_best_model(tmp_path):
    """load_best_model_at_end keeps the best checkpoint by its score: a resume that changed the
    score would compare its checkpoints with a best one scored another way."""

    def settings(*flags):
        chosen = [*BEST, "--output_dir", tmp_path, *flags]
        args = parsed(*chosen)
        return resume.training_settings(args.model, args.data, args.training)

    f1 = settings("--metric_for_best_model", "f1")
    assert f1["best model chosen by"] == "eval_subset_f1 on the first 8 dev questions"
    changed = resume.differences(f1, settings("--metric_for_best_model", "exact_match"))
    assert changed == [
        'best model chosen by: "eval_subset_f1 on the first 8 dev questions" -> '
        '"eval_subset_exact_match on the first 8 dev questions"'
    ]


def test_the_card_shows_the_epochs_trained_and_the_total_batch():
    """With max_steps the card said num_train_epochs (1) however far training went."""
    _, data_args, _, training_args = parsed("--max_steps", 2, "--gradient_accumulation_steps", 2)
    settings = card_settings(data_args, training_args, {"epoch": 2 / 3, "train_examples": 64})
    assert settings["epochs"] == 0.67 and settings["max_steps"] == 2
    assert settings["batch size (total)"] == 16 * 2  # per device x accumulation steps


@pytest.mark.slow
@needs_squad
def test_the_usual_arguments_on_the_smoke_run(tmp_path):
    """One short run with all of them; then the kept model scored again without
    eval_accumulation_steps answers the same."""
    output, results = tmp_path / "run", tmp_path / "results"
    cache = ["--features_cache_dir", tmp_path / "cache", "--report_to", "none"]
    run_qa(*BEST, "--metric_for_best_model", "f1", "--eval_steps", 1, "--save_steps", 1,
           "--max_steps", 2, "--gradient_accumulation_steps", 2, "--eval_accumulation_steps", 1,
           "--save_total_limit", 1, "--save_only_model", "true", "--output_dir", output,
           "--results_dir", results, *cache)  # fmt: skip
    state = json.loads((output / "trainer_state.json").read_text())
    curve = [e["eval_subset_f1"] for e in state["log_history"] if "eval_subset_f1" in e]
    assert state["global_step"] == 2 and state["best_metric"] == max(curve)
    best = Path(state["best_model_checkpoint"])
    assert [p.name for p in output.glob("checkpoint-*")] == [best.name]  # save_total_limit
    assert (best / "model.safetensors").read_bytes() == (output / "model.safetensors").read_bytes()
    assert (results / "all_results.json").is_file()
    trained = json.loads((output / "train_results.json").read_text())
    assert trained["epoch"] < 1  # max_steps stopped part-way through the epoch
    card = (output / "README.md").read_text()
    assert "| max_steps | 2 |" in card and "| batch size (total) | 32 |" in card
    again = tmp_path / "again"
    run_qa("--model_name_or_path", output, "--do_train", "false", "--output_dir", again, *cache)
    for name in ("predictions.json", "eval_results.json"):
        scored = [json.loads((folder / name).read_text()) for folder in (output, again)]
        if name == "eval_results.json":
            scored = [
                {k: v for k, v in s.items() if k in ("eval_f1", "eval_exact_match")} for s in scored
            ]
        assert scored[0] == scored[1]


@pytest.mark.slow
@needs_squad
def test_rerunning_after_a_kill_with_save_only_model_is_refused(tmp_path):
    """The newest whole checkpoint holds the model only: one line, before any training."""
    output = tmp_path / "run"
    flags = ["--save_strategy", "steps", "--save_steps", 1, "--save_only_model", "true",
             "--eval_strategy", "no", "--report_to", "none",
             "--features_cache_dir", tmp_path / "cache"]  # fmt: skip
    killed_after_checkpoint(1, *flags, output=output, log_path=tmp_path / "first.log")
    line = refusal(*flags, "--output_dir", output)
    assert "holds the model only (saved with save_only_model)" in line
