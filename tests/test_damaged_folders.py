"""A trained folder with a damaged file is refused by predict (and so the demo, which loads
through the same QuestionAnswerer) in one line naming the file and the fix, never a traceback;
tests/test_errors.py runs the same through run_qa.py's evaluation."""

import json
import os
import pickle
from pathlib import Path

import pytest

import predict_qa
from test_inputs import CONTEXT, bundled_model  # noqa: F401  (a fixture)


class RunsCode:
    """A pickle that would run a command when loaded: torch's safe loading refuses it."""

    def __reduce__(self):
        return (os.system, ("echo unsafe",))


def overwrite(content: bytes | str):
    """A damage that writes `content` in place of the (linked) file."""

    def damage(path: Path) -> None:
        path.unlink(missing_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)

    return damage


def cut_short(path: Path) -> None:
    overwrite(path.read_bytes()[: path.stat().st_size // 2])(path)


def wrong_config_type(path: Path) -> None:
    overwrite(json.dumps({**json.loads(path.read_text()), "hidden_size": "big"}))(path)


def unsafe_pickle(path: Path) -> None:
    (path.parent / "model.safetensors").unlink()
    overwrite(pickle.dumps(RunsCode()))(path)


def no_weights(path: Path) -> None:
    path.unlink()


# case: (the file damaged, how, words the line must hold besides the path of what is named)
DAMAGE = {
    "weights-an-unsafe-pickle": (
        "pytorch_model.bin",
        unsafe_pickle,
        "refuses to load these weights safely",
    ),
    "weights-cut-short": ("model.safetensors", cut_short, "cut short: its tensors need"),
    "weights-garbage": ("model.safetensors", overwrite(b"garbage" * 100), "not a safetensors file"),
    "weights-empty": (
        "model.safetensors",
        overwrite(b""),
        "0 bytes, shorter than a safetensors header",
    ),
    "weights-missing": ("model.safetensors", no_weights, "holds no model weights"),
    "config-cut-short": ("config.json", overwrite('{"model_type": "be'), "not valid JSON"),
    "config-a-list": ("config.json", overwrite("[1]"), "not a model config (no model_type)"),
    "config-wrong-type": ("config.json", wrong_config_type, "Field 'hidden_size' expected int"),
    "config-nested-too-deep": ("config.json", overwrite("[" * 100_000), "levels deep"),
    "tokenizer-cut-short": ("tokenizer.json", overwrite("{"), "not valid JSON"),
}


def damaged_folder(tmp_path: Path, source: str, case: str) -> tuple[Path, Path]:
    """(folder, what the message names): the model's files linked, one damaged as `case` says."""
    folder = tmp_path / case
    folder.mkdir()
    for item in Path(source).iterdir():
        (folder / item.name).symlink_to(item)
    name, damage, _ = DAMAGE[case]
    damage(folder / name)
    return folder, folder if damage is no_weights else folder / name


@pytest.mark.parametrize("case", DAMAGE, ids=DAMAGE.keys())
def test_predict_names_the_damaged_file_of_a_trained_folder(tmp_path, bundled_model, case, capfd):  # noqa: F811
    folder, damaged = damaged_folder(tmp_path, bundled_model, case)
    with pytest.raises(SystemExit) as excinfo:
        predict_qa.main([str(folder), "--context", CONTEXT, "--question", "Which river?"])
    message = str(excinfo.value)
    assert message.startswith(f"error: {damaged}") and "\n" not in message
    assert DAMAGE[case][2] in message
    assert "unsafe" not in capfd.readouterr().out  # the pickle's command never ran
