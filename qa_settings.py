"""The inference settings a trained folder carries: SQuAD 2.0 or not, and its no-answer threshold.

run_qa.py writes qa_settings.json beside the weights; `make eval`, predict_qa.py and the demo read
it, so a threshold tuned after training is used everywhere without being typed again. It travels
to the Hub with the rest of the folder.
"""

import json
import os

from qa_io import write_json_atomic

SETTINGS_FILE = "qa_settings.json"


def save_settings(folder: str, settings: dict) -> str:
    path = os.path.join(folder, SETTINGS_FILE)
    write_json_atomic(path, settings)
    return path


def load_settings(folder: str) -> dict:
    """The folder's settings; {} for a Hub id or a folder without them (the defaults apply)."""
    path = os.path.join(folder, SETTINGS_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            settings = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SystemExit(
            f"error: {path}: unreadable ({err}). Delete it to use the defaults, or run the "
            "evaluation again to rewrite it."
        ) from None
    threshold = settings.get("null_score_diff_threshold") if isinstance(settings, dict) else "?"
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, type(None))):
        raise SystemExit(
            f"error: {path}: 'null_score_diff_threshold' must be a number. Fix or delete the file."
        )
    return settings
