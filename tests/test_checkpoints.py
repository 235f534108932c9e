"""Output folders without training: whole checkpoints, the results swap, path spellings."""

import json
import logging
import re
import subprocess
import sys

import pytest

import qa.run.checkpoints
from qa.run.checkpoints import check_output_dirs, last_complete_checkpoint
from qa.run.config import parse_arguments
from qa.run.outputs import copy_results


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
    args = parse_arguments(flags)
    return args.training, args.run


def finished(folder, marker="old", only=None):
    """A finished run (or results copy, with `only` one of RESULT_FILES) and a file only it has."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all_results.json").write_text(json.dumps({"run": marker}))
    (folder / (only or f"{marker}-only.txt")).write_text(marker)


def test_a_finished_results_dir_alone_is_refused(tmp_path):
    finished(tmp_path / "results", only="samples.md")
    training_args, run_args = arguments(tmp_path, tmp_path / "new-run", tmp_path / "results")
    with pytest.raises(SystemExit, match=r"results already holds a finished run"):
        check_output_dirs(training_args, run_args)


def test_results_swap_keeps_the_old_results_until_the_new_ones_are_in_place(tmp_path, monkeypatch):
    output, results = tmp_path / "run", tmp_path / "results"
    finished(output, "new")
    finished(results, "old", only="tune_results.json")
    real_replace = qa.run.checkpoints.os.replace

    def crash_on_the_swap(source, target):
        if ".incoming-" in str(source):
            raise OSError("killed here")
        return real_replace(source, target)

    monkeypatch.setattr(qa.run.checkpoints.os, "replace", crash_on_the_swap)
    with pytest.raises(OSError, match="killed here"):
        copy_results(str(output), str(results))
    monkeypatch.setattr(qa.run.checkpoints.os, "replace", real_replace)
    # The old results are whole: in place, or aside where the next run puts them back.
    training_args, run_args = arguments(tmp_path, tmp_path / "other", results, overwrite=True)
    check_output_dirs(training_args, run_args)
    assert (results / "tune_results.json").is_file()
    assert json.loads((results / "all_results.json").read_text()) == {"run": "old"}

    copy_results(str(output), str(results))  # and the swap, done whole
    assert json.loads((results / "all_results.json").read_text()) == {"run": "new"}
    assert not (results / "tune_results.json").exists()  # nothing of the old run mixed in
    # No staging or aside folder left; only the lock files of the checks (checkpoints.hold_folder).
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["other.lock", "results", "results.lock", "run"]


@pytest.mark.parametrize("spelling", ["{}/", "{}//", "{}/."])
def test_output_dir_spelt_with_a_trailing_slash_is_moved_aside_whole(tmp_path, spelling):
    output = tmp_path / "run"
    finished(output, "old")
    training_args, run_args = arguments(
        tmp_path, spelling.format(output), f"{tmp_path}/results/", overwrite=True
    )
    assert training_args.output_dir == str(output)
    assert run_args.results_dir == str(tmp_path / "results")
    assert check_output_dirs(training_args, run_args) is None
    assert (tmp_path / "run.previous" / "old-only.txt").is_file() and not output.exists()


# Another run, as far as its start: it moves the old run aside, then holds the folder.
OTHER_RUN = """
import sys
from qa.run.config import parse_arguments
from qa.run.checkpoints import check_output_dirs
flags = ["--output_dir", sys.argv[1], "--do_eval", "--report_to", "none"]
args = parse_arguments([*flags, "--overwrite_output_dir", "true"])
check_output_dirs(args.training, args.run)
print("started", flush=True)
sys.stdin.read()
"""


def test_a_folder_in_use_stays_locked_after_being_moved_aside_and_is_freed_by_a_kill(tmp_path):
    output = tmp_path / "run"
    finished(output, "old")
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_RUN, str(output)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline() == "started\n"
        output.mkdir()
        (output / "train.log").write_text("the other run's first file")
        training_args, run_args = arguments(tmp_path, output, overwrite=True)
        holder = f"error: {output} is in use by another run (pid {other.pid} on "
        with pytest.raises(SystemExit, match="^" + re.escape(holder)):
            check_output_dirs(training_args, run_args)
        # Refused before anything moved: the other run's folder and the old run are untouched.
        assert (output / "train.log").is_file()
        assert (tmp_path / "run.previous" / "old-only.txt").is_file()
    finally:
        other.kill()  # SIGKILL: the kernel drops its lock, nothing is left to clear by hand
        other.wait()
    assert check_output_dirs(training_args, run_args) is None
    assert (tmp_path / "run.previous" / "train.log").is_file()


# Nothing this recipe did not write is moved, replaced or deleted (issue 28, item 1).


def snapshot(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def users_results(folder):
    """A user's own results folder: a README and earlier runs, no run of this recipe."""
    (folder / "earlier-run").mkdir(parents=True)
    (folder / "earlier-run" / "all_results.json").write_text("{}")
    (folder / "README.md").write_text("my notes")
    return snapshot(folder)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_results_dir_holding_a_users_files_is_refused_at_start(tmp_path, overwrite):
    results = tmp_path / "results"
    before = users_results(results)
    training_args, run_args = arguments(tmp_path, tmp_path / "run", results, overwrite)
    expected = f"error: results_dir {results} holds files this recipe did not write (README.md, earlier-run); nothing was moved or deleted. Move those files elsewhere, or choose another output_dir/results_dir."
    with pytest.raises(SystemExit) as refused:
        check_output_dirs(training_args, run_args)
    assert refused.value.code == expected
    assert snapshot(results) == before


def test_files_put_in_results_dir_during_the_run_are_not_replaced(tmp_path):
    output, results = tmp_path / "run", tmp_path / "results"
    finished(output, "new")
    before = users_results(results)
    with pytest.raises(SystemExit, match=rf"results_dir \(the results are in {output} only\)"):
        copy_results(str(output), str(results))
    assert snapshot(results) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "run"]  # no staging left


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_dir_holding_a_users_notes_is_refused_not_moved(tmp_path, overwrite):
    output = tmp_path / "notes"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    training_args, run_args = arguments(tmp_path, output, overwrite=overwrite)
    with pytest.raises(
        SystemExit,
        match=rf"^error: output_dir {output} holds files this recipe did not write \(notes.txt\)",
    ):
        check_output_dirs(training_args, run_args)
    assert snapshot(output) == ["notes.txt"] and not (tmp_path / "notes.previous").exists()


def test_a_previous_folder_this_recipe_did_not_write_is_not_deleted(tmp_path):
    output, previous = tmp_path / "run", tmp_path / "run.previous"
    finished(output)
    previous.mkdir()
    (previous / "notes.txt").write_text("mine")
    training_args, run_args = arguments(tmp_path, output, overwrite=True)
    with pytest.raises(SystemExit, match=r"folder for output_dir's previous run, .* \(notes.txt\)"):
        check_output_dirs(training_args, run_args)
    assert (previous / "notes.txt").is_file() and (output / "old-only.txt").is_file()


def test_a_users_folder_beside_results_dir_is_neither_restored_nor_deleted(tmp_path):
    results, aside = tmp_path / "results", tmp_path / "results.replaced"
    aside.mkdir()
    (aside / "notes.txt").write_text("mine")
    training_args, run_args = arguments(tmp_path, tmp_path / "run", results)
    with pytest.raises(SystemExit, match=r"the swap folder of results_dir .* \(notes.txt\)"):
        check_output_dirs(training_args, run_args)
    assert snapshot(aside) == ["notes.txt"] and not results.exists()


def test_a_results_dir_that_is_a_link_is_followed_run_after_run(tmp_path):
    target, link = tmp_path / "elsewhere" / "results", tmp_path / "results"
    target.mkdir(parents=True)
    link.symlink_to(target, target_is_directory=True)
    for run in ("first", "second"):
        output = tmp_path / run
        training_args, run_args = arguments(tmp_path, output, link, overwrite=True)
        check_output_dirs(training_args, run_args)
        finished(output, run)
        copy_results(str(output), str(link))
        assert link.is_symlink() and json.loads((target / "all_results.json").read_text()) == {
            "run": run
        }
    assert sorted(p.name for p in target.parent.iterdir()) == ["results", "results.lock"]


def test_an_output_dir_that_is_a_link_keeps_its_link_when_the_old_run_is_moved_aside(tmp_path):
    target, link = tmp_path / "disk" / "run", tmp_path / "run"
    finished(target)
    link.symlink_to(target, target_is_directory=True)
    training_args, run_args = arguments(tmp_path, link, overwrite=True)
    assert check_output_dirs(training_args, run_args) is None
    assert (tmp_path / "disk" / "run.previous" / "old-only.txt").is_file()
    assert link.is_symlink() and target.is_dir() and not any(target.iterdir())


@pytest.mark.parametrize("results", ["{run}", "{run}/results", "{tmp}"])
def test_a_results_dir_overlapping_output_dir_is_refused(tmp_path, results):
    output = tmp_path / "run"
    training_args, run_args = arguments(tmp_path, output, results.format(run=output, tmp=tmp_path))
    with pytest.raises(SystemExit, match=r"are the same folder or one holds the other"):
        check_output_dirs(training_args, run_args)


def test_a_users_file_named_like_the_lock_is_not_emptied(tmp_path):
    (tmp_path / "run.lock").write_text("my own file")
    training_args, run_args = arguments(tmp_path, tmp_path / "run")
    with pytest.raises(SystemExit, match=r"run.lock is not a lock file of this recipe"):
        check_output_dirs(training_args, run_args)
    assert (tmp_path / "run.lock").read_text() == "my own file"
