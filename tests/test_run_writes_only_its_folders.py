"""A run writes only in its own folders: nothing in the working directory it was started from."""

import pytest

from helpers.tiny_model import tiny_trainer
from qa.run.trackers import MLFLOW_FOLDER, mlflow_store


def test_an_evaluation_alone_keeps_its_tensorboard_logs_in_output_dir(tmp_path, monkeypatch):
    started_in = tmp_path / "cwd"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    trainer = tiny_trainer(tmp_path / "eval", report_to=["tensorboard"])
    trainer.log({"eval_f1": 50.0})  # what evaluate() logs, with no training begun
    assert list(started_in.iterdir()) == []
    assert list((tmp_path / "eval" / "runs").glob("*/events.out.tfevents.*"))


@pytest.fixture
def mlflow_here(tmp_path, monkeypatch):
    """A working directory of its own, no tracker settings from the environment, and no MLflow
    run left open for the next test."""
    import mlflow

    started_in = tmp_path / "cwd"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    yield started_in
    while mlflow.active_run():
        mlflow.end_run()


def logged_runs(output_dir):
    """{experiment name: [metrics of each of its runs]} in a run folder's MLflow store."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.flush_async_logging()  # the callback logs without waiting; the process's exit flushes
    client = MlflowClient(tracking_uri=mlflow_store(str(output_dir))[0])
    return {
        experiment.name: [
            run.data.metrics for run in client.search_runs([experiment.experiment_id])
        ]
        for experiment in client.search_experiments()
        if experiment.name != "Default"
    }


def test_an_evaluation_alone_keeps_its_mlflow_store_in_output_dir(tmp_path, mlflow_here):
    trainer = tiny_trainer(tmp_path / "eval", report_to=["mlflow"])
    trainer.log({"eval_f1": 50.0})
    assert list(mlflow_here.iterdir()) == []
    assert logged_runs(tmp_path / "eval") == {"eval": [{"eval_f1": 50.0, "epoch": 0.0}]}


def test_training_and_the_final_evaluation_log_into_one_mlflow_run(tmp_path, mlflow_here):
    trainer = tiny_trainer(tmp_path / "run", report_to=["mlflow"])
    handler, args = trainer.callback_handler, trainer.args
    handler.on_train_begin(args, trainer.state, trainer.control)
    trainer.log({"loss": 2.0})
    handler.on_train_end(args, trainer.state, trainer.control)
    trainer.log({"eval_f1": 50.0})  # run_qa's evaluation, after training
    [(experiment, runs)] = logged_runs(tmp_path / "run").items()
    assert experiment == "run" and len(runs) == 1
    assert runs[0]["loss"] == 2.0 and runs[0]["eval_f1"] == 50.0
    assert list(mlflow_here.iterdir()) == []


def test_a_tracking_uri_the_user_sets_wins(tmp_path, mlflow_here, monkeypatch):
    elsewhere = tmp_path / "team-store"
    elsewhere.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere}/mlflow.db")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    trainer = tiny_trainer(tmp_path / "run", report_to=["mlflow"])
    trainer.log({"eval_f1": 50.0})
    assert (elsewhere / "mlflow.db").is_file()
    assert not (tmp_path / "run" / MLFLOW_FOLDER).exists()
