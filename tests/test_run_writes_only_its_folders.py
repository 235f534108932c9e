"""A run writes only in its own folders: nothing in the working directory it was started from."""

from helpers.tiny_model import tiny_trainer


def test_an_evaluation_alone_keeps_its_tensorboard_logs_in_output_dir(tmp_path, monkeypatch):
    started_in = tmp_path / "cwd"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    trainer = tiny_trainer(tmp_path / "eval", report_to=["tensorboard"])
    trainer.log({"eval_f1": 50.0})  # what evaluate() logs, with no training begun
    assert list(started_in.iterdir()) == []
    assert list((tmp_path / "eval" / "runs").glob("*/events.out.tfevents.*"))
