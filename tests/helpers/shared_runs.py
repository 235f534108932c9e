"""Fixture folders built once per test run and read by every pytest-xdist worker.

A session- or module-scoped fixture is made once per worker: under `make test`'s two workers a
training run that tests on both workers need was trained twice, and a module whose tests were
split between the workers (work stealing moves the tail of one worker's queue to the other)
trained its runs twice as well. Here the first worker to ask builds the folder under a file
lock; a worker that asks later finds it done, one that asks meanwhile waits for it (no longer
than building it itself would take). Tests read these folders and copy them to change them.
"""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock


def shared_root(tmp_path_factory) -> Path:
    """The test run's temporary folder that every worker sees (each has its own below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


def shared_folder(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `name`, made by build(folder) once per test run, whichever worker asks first.

    A build that fails leaves no folder behind, so a worker that asks again builds it again
    (and meets the same failure, reported in its own test).
    """
    folder = shared_root(tmp_path_factory) / "shared" / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    done = folder.with_name(f"{name}.done")
    with FileLock(f"{folder}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                build(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            done.touch()
    return folder
