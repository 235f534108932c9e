"""Resuming a checkpoint with other training settings than it was made with is refused, naming
each difference, unless accepted; settings that change no weight never block a resume."""

import json
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
from transformers import TrainingArguments

from helpers.recipe_runner import needs_squad, refusal, run_qa
from qa.run import resume
from qa.run.config import DataArguments, ModelArguments, parse_arguments
from test_ranks import run_on_two_ranks
from test_reliability import killed_after_checkpoint

# 48 questions, batch 8: several steps, a checkpoint every 2; evaluated at the end only.
STEPS = ["--max_train_samples", 48, "--per_device_train_batch_size", 8, "--save_strategy",
         "steps", "--save_steps", 2, "--eval_strategy", "no", "--report_to", "none"]  # fmt: skip


def test_every_counted_setting_is_an_argument():
    """A name that is not a field (misspelt, or renamed by transformers) would fail at start."""
    for names, dataclass in (
        (resume.MODEL_SETTINGS, ModelArguments),
        (resume.DATA_SETTINGS, DataArguments),
        (resume.TRAINING_SETTINGS, TrainingArguments),
    ):
        assert set(names) <= {f.name for f in fields(dataclass)}


def settings_of(tmp_path, *flags):
    base = ["--output_dir", tmp_path / "run", "--do_train", "--report_to", "none"]
    model_args, data_args, _, training_args = parse_arguments([str(f) for f in (*base, *flags)])
    return resume.training_settings(model_args, data_args, training_args)


def test_only_settings_that_change_the_weights_count(tmp_path):
    data = tmp_path / "train.json"
    data.write_text('{"data": []}')
    base = settings_of(tmp_path, "--train_file", data)
    # None of these changes a weight: they may differ between a stop and its resume.
    assert settings_of(
        tmp_path, "--train_file", data, "--logging_steps", 7, "--output_dir", tmp_path / "elsewhere",
        "--eval_strategy", "steps", "--eval_steps", 3, "--save_steps", 9, "--num_samples", 1,
        "--dataloader_num_workers", 2, "--report_to", "tensorboard", "--results_dir", tmp_path,
        "--n_best_size", 5, "--cpu_threads", 1, "--attn_implementation", "eager",
    ) == base  # fmt: skip
    moved = tmp_path / "moved" / "train.json"  # the same data elsewhere is the same data
    moved.parent.mkdir()
    shutil.copyfile(data, moved)
    assert settings_of(tmp_path, "--train_file", moved) == base
    data.write_text('{"data": [], "version": "other"}')
    changed = resume.differences(base, settings_of(tmp_path, "--train_file", data, "--seed", 7))
    assert changed[0] == "seed: 42 -> 7" and changed[1].startswith("train_file sha256: ")


def _check_with_other_settings(args):
    """This command's settings differ from the recorded ones (only rank 0 looks)."""
    args.output_dir = args.run
    resume.training_settings = lambda *_: {"learning_rate": 0.0002}
    return resume.check_resume_settings(args.checkpoint, None, None, args, accept_changes=False)


def test_the_main_process_refuses_for_every_process(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)
    (run / resume.TRAINING_SETTINGS_FILE).write_text(json.dumps({"learning_rate": 0.0001}))
    results = run_on_two_ranks(
        _check_with_other_settings, run=str(run), checkpoint=str(run / "checkpoint-2")
    )
    refused = results[0]
    assert refused[0] == "exit" and "learning_rate: 0.0001 -> 0.0002" in refused[1]
    assert results == {0: refused, 1: refused}
    assert json.loads((run / resume.TRAINING_SETTINGS_FILE).read_text()) == {
        "learning_rate": 0.0001
    }


def test_a_checkpoint_without_recorded_settings_resumes_with_a_warning(tmp_path, caplog):
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)  # saved before settings were recorded
    resume.compare(str(run / "checkpoint-2"), {"learning_rate": 0.5}, accept=False)
    assert f"{run / 'checkpoint-2'} has no training_settings.json" in caplog.text


def snapshot(folder: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.slow
@needs_squad
def test_a_resume_with_other_settings_is_refused_unless_accepted(tmp_path):
    output = tmp_path / "run"
    killed_after_checkpoint(2, *STEPS, output=output, log_path=tmp_path / "first.log")
    accepted = tmp_path / "accepted"
    shutil.copytree(output, accepted / "run")
    before = snapshot(output)

    line = refusal(*STEPS, "--output_dir", output, "--learning_rate", 0.0002)
    assert line.startswith(f"error: {output}/checkpoint-") and "other settings" in line
    assert "learning_rate: 0.0001 -> 0.0002." in line and "--resume_with_changed_settings" in line
    assert snapshot(output) == before  # nothing written, not even train.log

    logging_changed = run_qa(*STEPS, "--output_dir", output, "--logging_steps", 3)
    assert "Resuming training from" in logging_changed.stdout
    assert (output / "all_results.json").is_file()

    changed = ["--learning_rate", 0.0002, "--resume_with_changed_settings", "true"]
    anyway = run_qa(*STEPS, "--output_dir", accepted / "run", *changed)
    log = anyway.stdout + anyway.stderr
    assert (
        "with changed settings (resume_with_changed_settings): learning_rate: 0.0001 -> 0.0002"
        in log
    )
    assert "Resuming training from" in log and (accepted / "run" / "all_results.json").is_file()
    recorded = json.loads((accepted / "run" / resume.TRAINING_SETTINGS_FILE).read_text())
    assert recorded["learning_rate"] == 0.0002  # the settings the later checkpoints were made with
