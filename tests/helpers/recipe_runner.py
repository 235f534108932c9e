"""Run run_qa.py as a user would, in a child process, for the end-to-end tests.

Runs train the tiny BERT of tests/helpers/tiny_model.py unless a test asks for the bundled model
(model=BUNDLED): most tests check what the recipe does, not what the model knows.
"""

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from unittest import mock

import pytest

from helpers.preloaded import PreloadedPython
from helpers.tiny_model import write_tiny_model
from qa.data.files import squad_dir

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests" / "configs" / "smoke.json"
# As run_qa.py resolves it: SQUAD_DIR, ../shared/squad, or make data's cache.
SQUAD_DIR = squad_dir()
needs_squad = pytest.mark.skipif(
    not (SQUAD_DIR / "dev-v1.1.json").is_file(), reason=f"no SQuAD data in {SQUAD_DIR}"
)
# Two CPU processes (DDP over gloo), one thread each. Through torchrun: accelerate launch --cpu
# --num_processes 2 starts one process unless MPI is set up (accelerate 1.15).
TWO_CPU_PROCESSES = [
    sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
]  # fmt: skip


def machine_cores() -> set[int]:
    """The cores this test run may use. make test's workers each keep to their share of them
    (tests/conftest.py); a test of how a run claims the machine's cores gives its child all of
    them back (preexec_fn=on_every_core)."""
    listed = os.environ.get("TESTS_MACHINE_CORES")
    return {int(core) for core in listed.split(",")} if listed else os.sched_getaffinity(0)


def on_every_core() -> None:
    os.sched_setaffinity(0, machine_cores())


def environment():
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "SQUAD_DIR": str(SQUAD_DIR),
        "PYTHONUNBUFFERED": "1",
    }


@cache
def tiny_model() -> Path:
    """The tiny BERT, written once per test run into a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="tiny-bert-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return write_tiny_model(folder / "model")


def first_questions_file(name: str, count: int) -> Path:
    """The first `count` questions of SQUAD_DIR/name, in a file of their own written once per
    test run (reading a whole official file cost each run most of a second). Made from
    SQUAD_DIR, so no SQuAD text is kept in the repository."""
    whole = json.loads((SQUAD_DIR / name).read_text(encoding="utf-8"))
    articles, left = [], count
    for article in whole["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            if left > 0:
                paragraphs.append({**paragraph, "qas": paragraph["qas"][:left]})
                left -= len(paragraphs[-1]["qas"])
        if paragraphs:
            articles.append({**article, "paragraphs": paragraphs})
    folder = Path(tempfile.mkdtemp(prefix="smoke-data-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / f"{Path(name).stem}-first{count}.json"
    path.write_text(json.dumps({"version": whole["version"], "data": articles}), encoding="utf-8")
    return path


@cache
def smoke_train_file() -> Path:
    """The questions of train-v1.1.json the smoke config trains on: its first 128, more than
    any test takes."""
    return first_questions_file("train-v1.1.json", 128)


@cache
def smoke_dev_file() -> Path:
    """The questions of dev-v1.1.json the smoke config scores: its first 128, more than any
    test scores (the first max_eval_samples are the same questions)."""
    return first_questions_file("dev-v1.1.json", 128)


def command(*flags, config=SMOKE, launcher=None, model="tiny", script="run_qa.py"):
    """run_qa.py's command line (or another script's that reads its configs, e.g. search_qa.py):
    the config, then the model (the tiny one, or `model` when it is another; None keeps the
    config's), for the smoke config the files of its training and dev questions (the same first
    questions of the official files it takes), then `flags`, which win."""
    launch = launcher or [sys.executable]
    chosen = str(tiny_model()) if model == "tiny" else model
    given = ["--model_name_or_path", chosen] if chosen else []
    flags = [str(flag) for flag in flags]
    # Not where a test names its own file, or where there is no official file to take from.
    for flag, name, subset in (
        ("--train_file", "train-v1.1.json", smoke_train_file),
        ("--validation_file", "dev-v1.1.json", smoke_dev_file),
    ):
        if Path(config) == SMOKE and flag not in flags and (SQUAD_DIR / name).is_file():
            given += [flag, str(subset())]
    return [*launch, str(ROOT / script), str(config), *given, *flags]


@cache
def preloaded_python() -> PreloadedPython:
    """This test process's preloaded Python (helpers/preloaded.py), started on first use."""
    preloaded = PreloadedPython(environment())
    atexit.register(preloaded.close)
    return preloaded


def run_qa(*flags, check=True, config=SMOKE, launcher=None, model="tiny", script="run_qa.py"):
    """run_qa.py (or `script`) to its end, as a child process; its CompletedProcess. Without a
    launcher the child is forked from a preloaded Python (seconds saved on imports) unless the
    test changed the environment, which a fresh start must then read."""
    argv = command(*flags, config=config, launcher=launcher, model=model, script=script)
    result = None
    if launcher is None:
        result = preloaded_python().run(argv[1:], environment(), timeout=900)
    if result is None:
        result = subprocess.run(
            argv, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=900
        )
    if check and result.returncode != 0:
        pytest.fail(f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def refusal(*flags, config=SMOKE, model="tiny") -> str:
    """The one line run_qa.py stops with when it refuses a run before training, found by calling
    its main() in this process: seconds faster than a child, which spends them importing torch
    and transformers. A refusal that a child would not end with exit status 1 and that line
    (a traceback) fails here too. tests/test_errors.py keeps child runs for the command itself."""
    import run_qa
    from qa.data.load import SquadDataError
    from qa.run.checkpoints import _held_locks

    argv = command(*flags, config=config, model=model)[2:]  # less the interpreter and script
    # What a run holds until its process ends, taken back after: the folder locks it took, and
    # the log file handler it put on these loggers.
    locks = set(_held_locks)
    loggers = [logging.getLogger(name) for name in ("run_qa", "transformers.trainer")]
    before = [list(logger.handlers) for logger in loggers]
    try:
        with (
            mock.patch.dict(os.environ, environment(), clear=True),
            pytest.raises((SystemExit, SquadDataError)) as stopped,
        ):
            run_qa.main(argv)
    finally:
        for path in set(_held_locks) - locks:
            _held_locks.pop(path).close()
        for logger, kept in zip(loggers, before):
            for handler in set(logger.handlers) - set(kept):
                logger.removeHandler(handler)
                handler.close()
    if isinstance(stopped.value, SquadDataError):  # run_qa.py's __main__ prints it so
        return f"error: {stopped.value}"
    message = stopped.value.code
    assert isinstance(message, str), f"exit status {message!r} instead of one line"
    return message.strip().splitlines()[-1]


def start_qa(*flags, log_path, model="tiny", script="run_qa.py"):
    """Start run_qa.py (or `script`) in the background, output to log_path; returns the Popen."""
    log = open(log_path, "w")  # noqa: SIM115 - closed by the caller through the process
    return subprocess.Popen(
        command(*flags, model=model, script=script),
        cwd=ROOT,
        env=environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
        # A background shell starts children with Ctrl-C ignored; a user's terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
