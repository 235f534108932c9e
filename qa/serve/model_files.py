"""A trained folder with a damaged file: one line naming the file and the fix, not the loader's
traceback (predict, the demo and an evaluation with run_qa.py load folders through this).

The file is found by looking at the folder, not by parsing the loader's message: its JSON files
must parse, config.json must name a model type, each safetensors file must be whole (its header
read and its tensors inside the file); weights that torch refuses to unpickle safely are named.
"""

import glob
import importlib
import json
import os
import pickle
import struct
from contextlib import contextmanager

from huggingface_hub.errors import StrictDataclassError

from qa.user_files import read_json_file


def resolve_model_path(name: str) -> str:
    """A folder or Hub id as is; an installed model package by the folder it bundles."""
    if os.path.exists(name):
        return name
    try:
        package = importlib.import_module(name.replace("-", "_"))
    except (ImportError, ValueError, TypeError):
        return name
    return str(package.get_model_path()) if hasattr(package, "get_model_path") else name


JSON_FILES = (
    "config.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "special_tokens_map.json",
    "generation_config.json",
)
FIX = "Copy the folder again, or train it again."


def safetensors_problem(path: str) -> str | None:
    """What is wrong with one .safetensors file (cut short, or not one), or None."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than a safetensors header"
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            return "cut short or not a safetensors file (its header is longer than the file)"
        try:
            header = json.loads(handle.read(length))
            ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
            return "not a safetensors file (its header is not one)"
    if 8 + length + max(ends, default=0) > size:
        return f"cut short: its tensors need {8 + length + max(ends):,} bytes, it has {size:,}"
    return None


def damaged_file(folder: str, err: Exception) -> str | None:
    """The damaged file in `folder` that `err` (raised while loading it) comes from, with the
    fix; None where the folder shows nothing damaged (or is no local folder)."""
    if not os.path.isdir(folder):
        return None
    for name in JSON_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            try:
                document = read_json_file(path, fix=FIX)
            except ValueError as bad:
                return str(bad)
            if name == "config.json" and not (
                isinstance(document, dict) and "model_type" in document
            ):
                return f"{path}: not a model config (no model_type). {FIX}"
    safetensors = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    for path in safetensors:
        if problem := safetensors_problem(path):
            return f"{path}: {problem}. {FIX}"
    if isinstance(err, OSError) and not safetensors + glob.glob(os.path.join(folder, "*.bin")):
        return f"{folder}: holds no model weights (model.safetensors). {FIX}"
    if isinstance(err, pickle.UnpicklingError):
        weights = sorted(glob.glob(os.path.join(folder, "*.bin"))) or [folder]
        return (
            f"{weights[0]}: torch refuses to load these weights safely (a pickle that could run "
            "code). Use a folder with model.safetensors, or convert these only if you trust "
            "where they came from."
        )
    if isinstance(err, StrictDataclassError):  # a config value of the wrong type
        detail = " ".join(str(err).split())
        return f"{os.path.join(folder, 'config.json')}: {detail}. Fix that value. {FIX}"
    return None


@contextmanager
def damage_named(folder: str):
    """Loading from `folder`: an error that a damaged file of it explains becomes SystemExit with
    one line naming the file; any other error passes through as it is. A loader's own one-line
    refusal (SystemExit: "not a model folder nor a Hub id") is replaced where a file explains it."""
    try:
        yield
    except (Exception, SystemExit) as err:
        if problem := damaged_file(folder, err):
            raise SystemExit(f"error: {problem}") from None
        raise
