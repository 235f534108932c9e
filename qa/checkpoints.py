"""What makes a checkpoint folder whole, and swapping a results folder without a gap.

The Trainer writes a checkpoint's weights, then the optimizer, scheduler and random states, and
trainer_state.json last; a kill can stop it anywhere, even half-way through that last file.
"""

import json
import os
import shutil

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


def aside_path(folder: str) -> str:
    return os.path.normpath(folder) + ".replaced"


def replace_folder(new: str, target: str) -> None:
    """Put the folder `new` where `target` is. The old `target` is moved aside first and deleted
    only once the new one is in place: a crash in between leaves it whole at aside_path(target),
    where restore_aside() finds it."""
    aside = aside_path(target)
    shutil.rmtree(aside, ignore_errors=True)
    if os.path.isdir(target):
        os.replace(target, aside)
    os.replace(new, target)
    shutil.rmtree(aside, ignore_errors=True)


def restore_aside(target: str) -> bool:
    """A swap that stopped half-way left the old folder aside and none in place: put it back."""
    aside = aside_path(target)
    if os.path.isdir(aside) and not os.path.exists(target):
        os.replace(aside, target)
        return True
    return False
