"""The inference settings a trained folder carries: SQuAD 2.0 or not, and its no-answer threshold.

run_qa.py writes qa_settings.json beside the weights; `make eval`, tools/predict_qa.py and the demo read
it, so a threshold tuned after training is used everywhere without being typed again. It travels
to the Hub with the rest of the folder.
"""

import math
import os

from qa.atomic import write_json_atomic
from qa.user_files import read_settings_object

ANSWER_SETTINGS_FILE = "qa_settings.json"


def save_settings(folder: str, settings: dict) -> str:
    path = os.path.join(folder, ANSWER_SETTINGS_FILE)
    write_json_atomic(path, settings)
    return path


def load_settings(folder: str) -> dict:
    """The folder's settings; {} for a Hub id or a folder without them (the defaults apply)."""
    path = os.path.join(folder, ANSWER_SETTINGS_FILE)
    if not os.path.isfile(path):
        return {}
    settings = read_settings_object(
        path, "Delete it to use the defaults, or run the evaluation again to rewrite it."
    )
    threshold = settings.get("null_score_diff_threshold")
    # json reads NaN and Infinity; a threshold of either would answer all or nothing.
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float, type(None)))
        or (threshold is not None and not math.isfinite(threshold))
    ):
        raise SystemExit(
            f"error: {path}: 'null_score_diff_threshold' must be a finite number, not "
            f"{threshold!r}. Fix or delete the file."
        )
    return settings


DEFAULTS = {
    "version_2_with_negative": False,
    "null_score_diff_threshold": 0.0,
    "max_seq_length": 384,
    "doc_stride": 128,
    "n_best_size": 20,
    "max_answer_length": 30,
}


def answering_settings(folder: str, **given) -> dict:
    """How to answer with a trained folder: each setting as given (None: not given), else as
    saved with the folder, else the recipe's default. Folders from before qa_settings.json
    fall back to the data arguments in their run_config.json."""
    saved = load_settings(folder)
    if not saved:
        legacy = os.path.join(folder, "run_config.json")
        if os.path.isfile(legacy):
            fix = "Write the folder's settings to qa_settings.json, or train it again."
            saved = read_settings_object(legacy, fix).get("data_arguments") or {}
            if not isinstance(saved, dict):
                raise SystemExit(f"error: {legacy}: 'data_arguments' is not an object. {fix}")
    settings = {}
    for key, default in DEFAULTS.items():
        value = given.get(key)
        if value is None:
            value = saved.get(key)
        settings[key] = default if value is None else value
    return settings


def inference_settings(data_args, null_threshold: float, checksums) -> dict:
    """What predict, the demo and make eval need to answer as this run did."""
    settings = {
        "version_2_with_negative": data_args.version_2_with_negative,
        "null_score_diff_threshold": null_threshold,
        "max_seq_length": data_args.max_seq_length,
        "doc_stride": data_args.doc_stride,
        "n_best_size": data_args.n_best_size,
        "max_answer_length": data_args.max_answer_length,
    }
    if "tune" in checksums:
        settings["threshold_tuned_on"] = {
            "file": os.path.basename(checksums["tune"]["path"]),
            "sha256": checksums["tune"]["sha256"],
        }
    return settings
