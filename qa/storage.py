"""The folders a run writes: refused at start if they cannot be written.

A folder that cannot be written used to fail only when the first file was saved, after loading,
tokenising and often hours of training.
"""

import os
import tempfile

from qa.ranks import decided_on_main


def written_folders(training_args, data_args) -> dict[str, str]:
    """{setting: folder} for each folder the run writes to."""
    folders = {
        "output_dir": training_args.output_dir,
        "results_dir": data_args.results_dir,
        "features_cache_dir": data_args.features_cache_dir,
    }
    return {name: folder for name, folder in folders.items() if folder}


def nearest_existing(path: str) -> str:
    """`path`, or the nearest of its parents that exists: where the folder would be created."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def probe_writable(setting: str, folder: str) -> None:
    """Create and delete a file where `folder` is (or would be created); one line if it fails."""
    existing = nearest_existing(folder)
    if not os.path.isdir(existing):
        raise SystemExit(
            f"error: {setting} {folder} cannot be created: {existing} is a file, not a folder. "
            f"Choose another {setting}."
        )
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".write-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise SystemExit(
            f"error: {setting} {folder} cannot be written ({existing}: {err.strerror}). Choose "
            f"a folder this user can write to as {setting}, or make it writable."
        ) from None


def check_writable(training_args, data_args) -> None:
    """Before anything is loaded: every folder the run writes can be written. The main process
    (the one that writes) probes; every process gets its refusal."""

    def on_main():
        for setting, folder in written_folders(training_args, data_args).items():
            probe_writable(setting, folder)

    decided_on_main(training_args, on_main)
