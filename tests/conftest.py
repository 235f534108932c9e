"""Shared fixtures: one small real training run, reused by every test module that needs one."""

import multiprocessing
import os

import pytest
from hypothesis import settings

from helpers.recipe_runner import SQUAD_DIR, run_qa
from helpers.shared_runs import shared_folder

# Tests that draw random inputs draw the same ones on every run, so a commit is green or red for
# everyone; `make fuzz` (HYPOTHESIS_PROFILE=fuzz) draws fresh ones, many more, to find new cases.
settings.register_profile("deterministic", derandomize=True, database=None, max_examples=150)
settings.register_profile("fuzz", max_examples=10_000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


# Tests that run code on two ranks start them with torch.multiprocessing's "forkserver": each
# rank is forked from one server process that imported the recipe (torch, transformers) once,
# instead of a spawned process importing it all again (seconds per rank, per test); a fork of the
# test process itself could inherit a running OpenMP pool, which a forked child may hang on. The
# server imports from the directory pytest runs in (the root); elsewhere the ranks import anew.
multiprocessing.get_context("forkserver").set_forkserver_preload(["trainer_qa"])


def pytest_configure(config):
    """Under pytest-xdist (make test runs one worker per core), each worker and every process it
    starts keep to a core of their own: a run's threads (qa/machine/threads.py counts the cores
    it may use) then never crowd the other worker's, and the time a test spends in one thread
    (starting Python, importing torch, tokenising, post-processing) overlaps the other's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... in a worker only
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    # For the tests of how a run claims the machine's cores (helpers.recipe_runner.machine_cores).
    os.environ["TESTS_MACHINE_CORES"] = ",".join(map(str, cores))
    if len(cores) >= count:
        share = cores[int(worker.removeprefix("gw")) :: count]
        os.sched_setaffinity(0, share)
        os.environ["OMP_NUM_THREADS"] = str(len(share))  # read by OpenMP as torch loads
        import torch

        torch.set_num_threads(len(share))  # in case it had loaded already


def pytest_collection_modifyitems(items):
    """A test that needs one of the training runs below is slow, wherever it is marked or not."""
    for item in items:
        if {"smoke_run", "smoke_v2_run"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def trained_smoke_run(tmp_path_factory, name: str, **config):
    """(output folder, results folder, stdout) of one smoke config, trained once per test run."""

    def build(base):
        result = run_qa(
            "--output_dir", base / "run", "--results_dir", base / "results",
            "--features_cache_dir", base / "cache", **config,
        )  # fmt: skip
        (base / "stdout.txt").write_text(result.stdout)

    base = shared_folder(tmp_path_factory, name, build)
    return base / "run", base / "results", (base / "stdout.txt").read_text()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """(output folder, results folder, stdout) of tests/configs/smoke.json: 64 questions, a few steps."""
    if not (SQUAD_DIR / "dev-v1.1.json").is_file():
        pytest.skip(f"no SQuAD data in {SQUAD_DIR}")
    return trained_smoke_run(tmp_path_factory, "smoke")


@pytest.fixture(scope="session")
def smoke_v2_run(tmp_path_factory):
    """(output folder, results folder, stdout) of tests/configs/smoke-v2.json: SQuAD 2.0 on the split,
    64 training questions, the threshold tuned on 48 questions, 48 held-out questions scored."""
    from helpers.recipe_runner import ROOT

    if not (SQUAD_DIR / "dev-v2.0.json").is_file():
        pytest.skip(f"no SQuAD data in {SQUAD_DIR}")
    config = ROOT / "tests" / "configs" / "smoke-v2.json"
    return trained_smoke_run(tmp_path_factory, "smoke-v2", config=config)
