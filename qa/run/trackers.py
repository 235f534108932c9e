"""Where the Trainer's trackers write: TensorBoard and MLflow log inside the run's own folder
unless the user points them elsewhere (TENSORBOARD_LOGGING_DIR, MLFLOW_TRACKING_URI).

Left alone, both write into the working directory: TensorBoard's writer makes ./runs/ when an
evaluation logs before training began, and MLflow 3 keeps its store in ./mlflow.db with
artifacts under ./mlruns/. A run folder that holds its own curves can be copied, compared and
deleted as one thing."""

import os

from transformers.integrations import MLflowCallback, TensorBoardCallback
from transformers.integrations.integration_utils import default_logdir

MLFLOW_FOLDER = "mlflow"  # output_dir/mlflow/: mlflow.db (runs, params, metrics) and artifacts/


def keep_trackers_in_output_dir(trainer) -> None:
    """Point each tracker callback the Trainer made at trainer.args.output_dir, before
    anything is logged."""
    callbacks = trainer.callback_handler.callbacks
    for index, callback in enumerate(callbacks):
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            # The folder the callback picks itself when training begins, chosen now.
            callback.logging_dir = os.path.join(trainer.args.output_dir, default_logdir())
        elif type(callback) is MLflowCallback:
            callbacks[index] = OneMLflowRun()


def mlflow_store(output_dir: str) -> tuple[str, str]:
    """(tracking URI, artifact folder) of a run's own MLflow store. SQLite: MLflow 3 refuses a
    new plain-file store unless told to, and `mlflow ui --backend-store-uri` reads this one."""
    folder = os.path.abspath(os.path.join(output_dir, MLFLOW_FOLDER))
    return f"sqlite:///{folder}/mlflow.db", os.path.join(folder, "artifacts")


class OneMLflowRun(MLflowCallback):
    """transformers' MLflow callback with the store in the run's folder and the experiment
    named after that folder (MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME win), and one MLflow
    run per recipe run: the stock callback ends its MLflow run when training ends, and the final
    evaluation's scores would then start a second, unnamed one; they reopen the first here."""

    run_id = None  # the MLflow run this callback started

    def setup(self, args, state, model):
        if state.is_world_process_zero:
            # Set for this process either way, so that no store an earlier run set stays.
            if user_uri := os.environ.get("MLFLOW_TRACKING_URI"):
                self._ml_flow.set_tracking_uri(user_uri)
            else:
                self.use_own_store(args.output_dir)
        super().setup(args, state, model)
        if state.is_world_process_zero:
            self.run_id = self._ml_flow.active_run().info.run_id

    def use_own_store(self, output_dir: str) -> None:
        """Make the run folder's store the active one, with an experiment named after the
        folder (unless MLFLOW_EXPERIMENT_NAME names one) whose artifacts go there too."""
        uri, artifacts = mlflow_store(output_dir)
        os.makedirs(os.path.dirname(artifacts), exist_ok=True)
        self._ml_flow.set_tracking_uri(uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.path.basename(
            os.path.abspath(output_dir)
        )
        if self._ml_flow.get_experiment_by_name(name) is None:
            # Made here, not by the stock callback: its artifacts would go to ./mlruns.
            self._ml_flow.create_experiment(name, artifact_location=f"file://{artifacts}")
        self._ml_flow.set_experiment(name)  # the experiment the callback's start_run uses

    def on_log(self, args, state, control, logs, model=None, **kwargs):
        if self.run_id and state.is_world_process_zero and self._ml_flow.active_run() is None:
            self._ml_flow.start_run(run_id=self.run_id)  # scores after training: the same run
            self._auto_end_run = True
        super().on_log(args, state, control, logs, model=model, **kwargs)
