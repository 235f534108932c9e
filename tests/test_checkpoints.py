"""Output folders without training: whole checkpoints, the results swap, path spellings."""

import json
import logging

from run_qa import last_complete_checkpoint


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
