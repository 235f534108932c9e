"""The offline SQuAD metric (qa/scoring/squad_qa/, shipped inside the package) and the predictions it takes."""

import importlib.util
from pathlib import Path

from qa.answers.prediction_files import best_span_text

# A folder of the package, not a module of it: evaluate loads the script by its path and copies it
# into its own cache, so the script imports nothing from qa.
METRIC_PATH = Path(__file__).parent / "squad_qa"
# Metric names of the learning-curve evaluations on the first dev questions while training.
TRAINING_EVAL_PREFIX = "eval_subset"


def load_metric():
    """The offline SQuAD metric, through evaluate's module interface."""
    import evaluate

    return evaluate.load(str(METRIC_PATH))


def load_metric_functions():
    """The same metric's per-question scoring, imported from its file."""
    spec = importlib.util.spec_from_file_location("squad_qa", METRIC_PATH / "squad_qa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metric_inputs(answers: dict, version_2: bool) -> list[dict]:
    """Predictions for the metric. For SQuAD 2.0 each question's best span with its null score
    difference, so the metric's threshold sweep (best_f1_thresh) and its scores at a threshold
    use the same quantity as post-processing: no answer where null - best span > threshold."""
    if not version_2:
        return [{"id": k, "prediction_text": v.text} for k, v in answers.items()]
    return [
        {
            "id": k,
            "prediction_text": best_span_text(v),
            "no_answer_probability": v.null_score_diff,
        }
        for k, v in answers.items()
    ]
