"""What makes a checkpoint folder whole.

The Trainer writes a checkpoint's weights, then the optimizer, scheduler and random states, and
trainer_state.json last; a kill can stop it anywhere, even half-way through that last file.
"""

import json
import os

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def checkpoint_problem(folder: str) -> str | None:
    """Why a checkpoint cannot be resumed from, in a few words; None if it is whole."""
    state_path = os.path.join(folder, "trainer_state.json")
    if not os.path.isfile(state_path):
        return "no trainer_state.json"
    try:
        with open(state_path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"trainer_state.json does not parse: {err}"
    if not isinstance(state, dict) or type(state.get("global_step")) is not int:
        return "trainer_state.json has no global_step"
    if not any(
        os.path.isfile(os.path.join(folder, name)) and os.path.getsize(os.path.join(folder, name))
        for name in WEIGHT_FILES
    ):
        return "no model weights"
    return None
