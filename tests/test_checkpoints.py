"""Output folders without training: whole checkpoints, the results swap, path spellings."""

import json
import logging

import pytest

import qa.checkpoints
from qa.config import parse_arguments
from qa.outputs import check_output_dirs, copy_results, last_complete_checkpoint


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "run"]


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
