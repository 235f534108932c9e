"""Runs that are killed, interrupted or spread over processes end where an undisturbed run ends."""

import json
import re
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from helpers.recipe_runner import (
    ROOT,
    SQUAD_DIR,
    TWO_CPU_PROCESSES,
    needs_squad,
    refusal,
    run_qa,
    start_qa,
)
from helpers.shared_runs import shared_folder
from qa.run.checkpoints import checkpoint_problem

pytestmark = [pytest.mark.slow, needs_squad]  # they train several runs

# 96 questions, batch 16: 6+ steps, a checkpoint every 2.
SHORT = ["--max_train_samples", 96, "--save_strategy", "steps", "--save_steps", 2]


def wait_for(predicate, process, seconds=600):
    deadline = time.time() + seconds
    while not predicate():
        if process.poll() is not None:
            pytest.fail(f"run ended early with code {process.returncode}")
        if time.time() > deadline:
            process.kill()
            pytest.fail("timed out waiting for the run")
        time.sleep(0.2)


def freeze(process, seconds=30):
    """SIGSTOP the process and return once every thread of it has stopped: kill() only
    queues the signal, and a thread busy writing a checkpoint goes on for a moment."""
    process.send_signal(signal.SIGSTOP)
    tasks = Path(f"/proc/{process.pid}/task")
    deadline = time.time() + seconds
    while not all(_state(task) in "tT" for task in tasks.iterdir()):
        assert time.time() < deadline, f"pid {process.pid} did not stop"
        time.sleep(0.01)


def _state(task):
    # /proc/<pid>/task/<tid>/stat: "tid (name) S ...": the state follows the last ')'.
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:  # a thread that ended meanwhile holds nothing
        return "T"


def same_weights(folder_a, folder_b):
    a, b = load_file(folder_a / "model.safetensors"), load_file(folder_b / "model.safetensors")
    assert a.keys() == b.keys()
    return all((a[k] == b[k]).all() for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    def build(base):
        run_qa(*SHORT, "--output_dir", base / "run")

    return shared_folder(tmp_path_factory, "uninterrupted", build) / "run"


def whole_checkpoints(output):
    steps = [int(p.name.split("-")[1]) for p in output.glob("checkpoint-*")]
    return [
        output / f"checkpoint-{s}"
        for s in sorted(steps)
        if not checkpoint_problem(str(output / f"checkpoint-{s}"))
    ]


def killed_after_checkpoint(step, *flags, output, log_path):
    """Start a run, SIGKILL it once checkpoint-`step` is whole (not merely present: its state
    file may be half-written when it first appears); it leaves no finish marker."""
    process = start_qa(*flags, "--output_dir", output, log_path=log_path)
    wait_for(lambda: checkpoint_problem(str(output / f"checkpoint-{step}")) is None, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (output / "all_results.json").exists()


def test_killed_run_resumes_to_the_same_model_and_scores(uninterrupted, tmp_path):
    output = tmp_path / "run"
    killed_after_checkpoint(4, *SHORT, output=output, log_path=tmp_path / "first.log")
    # A kill in the middle of writing the newest trainer_state.json, made certain: cut it short.
    *_, previous, newest = whole_checkpoints(output)
    state = newest / "trainer_state.json"
    state.write_text(state.read_text()[: len(state.read_text()) // 2])

    resumed = run_qa(*SHORT, "--output_dir", output)
    log = resumed.stdout + resumed.stderr
    assert f"Checkpoint {newest} is incomplete (trainer_state.json does not parse" in log
    assert f"Resuming training from {previous}" in log and "Traceback" not in log
    assert same_weights(output, uninterrupted)
    new, old = (json.loads((d / "eval_results.json").read_text()) for d in (output, uninterrupted))
    assert (new["eval_exact_match"], new["eval_f1"]) == (old["eval_exact_match"], old["eval_f1"])
    assert (output / "predictions.json").read_text() == (
        uninterrupted / "predictions.json"
    ).read_text()


# SIGTERM: what Slurm, Kubernetes and `kill` send before they kill a job.
STOP_SIGNALS = [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")]


@pytest.mark.parametrize("signum, name", STOP_SIGNALS, ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_at_a_step_boundary_and_the_same_command_resumes(
    uninterrupted, tmp_path, signum, name
):
    output = tmp_path / "run"
    process = start_qa(*SHORT, "--output_dir", output, log_path=tmp_path / "log")
    wait_for(lambda: '"step": 1,' in _read(output / "train.log"), process)
    process.send_signal(signum)
    process.wait(timeout=300)
    log = (tmp_path / "log").read_text()
    assert process.returncode == 1
    assert f"{name}: saving a checkpoint at the end of this step" in log
    assert "Run the same command again to resume" in log
    assert "Traceback" not in log
    saved = re.search(rf"Interrupted by {name} at step (\d+); checkpoint saved in (\S+)\. ", log)
    step, folder = int(saved.group(1)), output / f"checkpoint-{saved.group(1)}"
    assert saved.group(2) == str(folder) and checkpoint_problem(str(folder)) is None
    # Saved at a step boundary: the state's step is the one the saved weights reached.
    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == step
    assert not (output / "all_results.json").exists()  # an interrupted run is not finished

    resumed = run_qa(*SHORT, "--output_dir", output)
    assert f"Resuming training from {folder}" in resumed.stdout + resumed.stderr
    assert same_weights(output, uninterrupted)
    assert (output / "all_results.json").is_file()


def test_sigterm_before_training_ends_the_run_with_one_line(tmp_path):
    output, log = tmp_path / "run", tmp_path / "log"
    # The whole training file to tokenise, afresh: a long while in which no training has begun.
    every_question = ["--train_file", SQUAD_DIR / "train-v1.1.json", "--max_train_samples", 10**6,
                      "--features_cache_dir", tmp_path / "cache"]  # fmt: skip
    process = start_qa(*every_question, "--output_dir", output, log_path=log)
    wait_for(lambda: "A newly initialised qa_outputs layer is expected" in _read(log), process)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)
    text = log.read_text()
    assert process.returncode == 1
    message = (
        "Stopped by SIGTERM outside the training steps (nothing was being saved). "
        "Run the same command again: it resumes from the last whole checkpoint, if any."
    )
    assert text.splitlines().count(message) == 1
    assert "Traceback" not in text and "Running training" not in text
    assert not (output / "all_results.json").exists()


def snapshot(folder):
    """Every file below folder with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_a_second_run_on_a_folder_in_use_is_refused_and_a_killed_run_holds_nothing(
    uninterrupted, tmp_path
):
    output, results = tmp_path / "run", tmp_path / "results"
    flags = [*SHORT, "--output_dir", output, "--results_dir", results]
    first = start_qa(*flags, log_path=tmp_path / "first.log")
    wait_for(lambda: checkpoint_problem(str(output / "checkpoint-2")) is None, first)
    freeze(first)  # frozen with its lock: the folder cannot change meanwhile
    try:
        before = snapshot(output)
        # The same output_dir; another output_dir with the same results_dir.
        for folder, output_dir, results_dir in [
            (output, output, tmp_path / "other-results"),
            (results, tmp_path / "other-run", results),
        ]:
            refused = run_qa(*SHORT, "--output_dir", output_dir, "--results_dir", results_dir,
                             check=False)  # fmt: skip
            assert refused.returncode == 1, refused.stdout[-2000:]
            one_line = (
                re.escape(
                    f"error: {folder} is in use by another run (pid {first.pid} on "
                    f"{socket.gethostname()}, since "
                )
                + r"[-\d]+ [:\d]+"
                + re.escape(
                    f"; lock {folder}.lock). Wait for it to end, or choose another "
                    "output_dir/results_dir."
                )
            )
            assert re.fullmatch(one_line, refused.stderr.strip()), refused.stderr[-2000:]
            assert "Model " not in refused.stdout  # refused at the start, before loading
        assert snapshot(output) == before and not results.exists()
        assert not (tmp_path / "other-run").exists()
    finally:
        first.kill()  # SIGKILL: no clean-up at all, and yet the lock is gone with the process
        first.wait()

    resumed = run_qa(*flags)
    assert f"Resuming training from {output}/checkpoint-" in resumed.stdout + resumed.stderr
    assert same_weights(output, uninterrupted)
    assert (results / "all_results.json").is_file()


NAN_AT_STEP_3 = [str(ROOT / "tests" / "helpers" / "loss_goes_nan.py"), "3"]


@pytest.mark.parametrize(
    "world, nan_on", [(1, "all"), (2, "1")], ids=["one-process", "two-processes-nan-on-one"]
)
def test_a_nan_loss_stops_the_run_naming_the_step_and_leaves_nothing_that_looks_valid(
    tmp_path, world, nan_on
):
    output, workers = tmp_path / "run", tmp_path / "workers"
    launcher = [sys.executable]
    if world == 2:  # each process's output in its files: torchrun adds a traceback of its own
        launcher = [*TWO_CPU_PROCESSES, "--log-dir", str(workers), "--redirects", "3"]
    result = run_qa(*SHORT, "--output_dir", output, "--results_dir", tmp_path / "results",
                    launcher=[*launcher, *NAN_AT_STEP_3, nan_on], check=False)  # fmt: skip
    assert result.returncode == 1, (result.stdout + result.stderr)[-3000:]
    logs = [result.stdout + result.stderr]
    if world == 2:
        logs = [
            (p / "stdout.log").read_text() + (p / "stderr.log").read_text()
            for p in {f.parent for f in workers.rglob("stderr.log")}
        ]
    message = (
        "error: the training loss is NaN or infinite at step 3: training stopped, no model or "
        f"results written (the last whole checkpoint is {output}/checkpoint-2). Lower "
        "learning_rate (it was 0.0001) or check the training data, then start afresh: another "
        "output_dir, or --overwrite_output_dir true."
    )
    # Every process stops at that step with the message, none is left waiting for the others.
    assert len(logs) == world
    for log in logs:
        assert log.splitlines().count(message) == 1 and "Traceback" not in log
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-2"]
    assert checkpoint_problem(str(output / "checkpoint-2")) is None
    written = {p.name for p in output.iterdir()}
    assert not written & {"model.safetensors", "all_results.json", "train_results.json"}
    assert not (tmp_path / "results").exists()


def processes(run):
    """The world size the run recorded."""
    return json.loads((run / "run_config.json").read_text())["machine"]["processes"]


def _read(path):
    return path.read_text() if path.is_file() else ""


def test_two_processes_by_torchrun_evaluate_like_one(uninterrupted, tmp_path):
    """torchrun's launch (two-process training is tests/test_launch.py's, through accelerate,
    which checks the same windows, steps and predictions as one process)."""
    # The same checkpoint scored by one and by two processes: identical answers and scores.
    by_one, by_two = tmp_path / "eval1", tmp_path / "eval2"
    evaluate = ["--model_name_or_path", uninterrupted, "--do_train", "false", "--bf16", "false"]
    run_qa(*evaluate, "--output_dir", by_one)
    run_qa(*evaluate, "--output_dir", by_two, launcher=TWO_CPU_PROCESSES)
    assert (processes(by_one), processes(by_two)) == (1, 2)
    assert (by_one / "predictions.json").read_text() == (by_two / "predictions.json").read_text()
    one, both = (json.loads((d / "eval_results.json").read_text()) for d in (by_one, by_two))
    assert (one["eval_exact_match"], one["eval_f1"]) == (both["eval_exact_match"], both["eval_f1"])


def test_overwrite_moves_the_old_run_aside_whole(uninterrupted, tmp_path):
    output = tmp_path / "run"
    shutil.copytree(uninterrupted, output)
    evaluate = ["--model_name_or_path", uninterrupted, "--do_train", "false"]
    assert "already holds a finished run" in refusal(*evaluate, "--output_dir", output)
    run_qa(*evaluate, "--output_dir", output, "--overwrite_output_dir", "true")
    previous = tmp_path / "run.previous"
    assert (previous / "model.safetensors").is_file()  # the old run, untouched
    assert not (output / "model.safetensors").exists()  # the new one only evaluated
    assert (output / "all_results.json").is_file()
