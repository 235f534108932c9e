"""Output folders without training: whole checkpoints, the results swap, path spellings."""

import json
import logging
import re
import subprocess
import sys

import pytest

import qa.checkpoints
from qa.checkpoints import check_output_dirs, last_complete_checkpoint
from qa.config import parse_arguments
from qa.outputs import copy_results


def checkpoint(folder, step, state="whole", weights=True):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if weights:
        (path / "model.safetensors").write_bytes(b"\0" * 64)
    text = json.dumps({"global_step": step, "log_history": []})
    if state == "whole":
        (path / "trainer_state.json").write_text(text)
    elif state == "half":  # killed while the Trainer was writing it
        (path / "trainer_state.json").write_text(text[: len(text) // 2])
    return path


def test_half_written_or_weightless_checkpoints_are_passed_over_and_logged(tmp_path, caplog):
    checkpoint(tmp_path, 2)
    checkpoint(tmp_path, 4)
    checkpoint(tmp_path, 6, weights=False)
    checkpoint(tmp_path, 8, state="half")
    checkpoint(tmp_path, 10, state=None)
    with caplog.at_level(logging.WARNING, logger="run_qa"):
        assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-4")
    assert "checkpoint-8 is incomplete (trainer_state.json does not parse" in caplog.text
    assert "checkpoint-6 is incomplete (no model weights)" in caplog.text
    assert "checkpoint-10 is incomplete (no trainer_state.json)" in caplog.text
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("[]")
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text("")
    assert last_complete_checkpoint(str(tmp_path)) is None


def arguments(tmp_path, output, results=None, overwrite=False):
    flags = ["--output_dir", str(output), "--do_eval", "--report_to", "none"]
    flags += ["--results_dir", str(results)] if results else []
    flags += ["--overwrite_output_dir", "true"] if overwrite else []
    _, data_args, training_args = parse_arguments(flags)
    return training_args, data_args


def finished(folder, marker="old"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all_results.json").write_text(json.dumps({"run": marker}))
    (folder / f"{marker}-only.txt").write_text(marker)


def test_a_finished_results_dir_alone_is_refused(tmp_path):
    finished(tmp_path / "results")
    training_args, data_args = arguments(tmp_path, tmp_path / "new-run", tmp_path / "results")
    with pytest.raises(SystemExit, match=r"results already holds a finished run"):
        check_output_dirs(training_args, data_args)


def test_results_swap_keeps_the_old_results_until_the_new_ones_are_in_place(tmp_path, monkeypatch):
    output, results = tmp_path / "run", tmp_path / "results"
    finished(output, "new")
    finished(results, "old")
    real_replace = qa.checkpoints.os.replace

    def crash_on_the_swap(source, target):
        if str(source).endswith(".incoming"):
            raise OSError("killed here")
        return real_replace(source, target)

    monkeypatch.setattr(qa.checkpoints.os, "replace", crash_on_the_swap)
    with pytest.raises(OSError, match="killed here"):
        copy_results(str(output), str(results))
    monkeypatch.setattr(qa.checkpoints.os, "replace", real_replace)
    # The old results are whole: in place, or aside where the next run puts them back.
    training_args, data_args = arguments(tmp_path, tmp_path / "other", results, overwrite=True)
    check_output_dirs(training_args, data_args)
    assert (results / "old-only.txt").is_file()
    assert json.loads((results / "all_results.json").read_text()) == {"run": "old"}

    copy_results(str(output), str(results))  # and the swap, done whole
    assert json.loads((results / "all_results.json").read_text()) == {"run": "new"}
    assert not (results / "old-only.txt").exists()  # nothing of the old run mixed in
    # No staging or aside folder left; only the lock files of the checks (checkpoints.hold_folder).
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["other.lock", "results", "results.lock", "run"]


@pytest.mark.parametrize("spelling", ["{}/", "{}//", "{}/."])
def test_output_dir_spelt_with_a_trailing_slash_is_moved_aside_whole(tmp_path, spelling):
    output = tmp_path / "run"
    finished(output, "old")
    training_args, data_args = arguments(
        tmp_path, spelling.format(output), f"{tmp_path}/results/", overwrite=True
    )
    assert training_args.output_dir == str(output)
    assert data_args.results_dir == str(tmp_path / "results")
    assert check_output_dirs(training_args, data_args) is None
    assert (tmp_path / "run.previous" / "old-only.txt").is_file() and not output.exists()


# Another run, as far as its start: it moves the old run aside, then holds the folder.
OTHER_RUN = """
import sys
from qa.config import parse_arguments
from qa.checkpoints import check_output_dirs
flags = ["--output_dir", sys.argv[1], "--do_eval", "--report_to", "none"]
_, data_args, training_args = parse_arguments([*flags, "--overwrite_output_dir", "true"])
check_output_dirs(training_args, data_args)
print("started", flush=True)
sys.stdin.read()
"""


def test_a_folder_in_use_stays_locked_after_being_moved_aside_and_is_freed_by_a_kill(tmp_path):
    output = tmp_path / "run"
    finished(output, "old")
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_RUN, str(output)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert other.stdout.readline() == "started\n"
        output.mkdir()
        (output / "new-only.txt").write_text("the other run's first file")
        training_args, data_args = arguments(tmp_path, output, overwrite=True)
        holder = f"error: {output} is in use by another run (pid {other.pid} on "
        with pytest.raises(SystemExit, match="^" + re.escape(holder)):
            check_output_dirs(training_args, data_args)
        # Refused before anything moved: the other run's folder and the old run are untouched.
        assert (output / "new-only.txt").is_file()
        assert (tmp_path / "run.previous" / "old-only.txt").is_file()
    finally:
        other.kill()  # SIGKILL: the kernel drops its lock, nothing is left to clear by hand
        other.wait()
    assert check_output_dirs(training_args, data_args) is None
    assert (tmp_path / "run.previous" / "new-only.txt").is_file()
