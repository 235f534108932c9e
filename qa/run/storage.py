"""The folders a run writes: refused at start if they cannot be written, and a disk that fills
while writing stops the run with one line instead of a traceback.

A folder that cannot be written used to fail only when the first file was saved, after loading,
tokenising and often hours of training. A full disk fails in whichever writer hits it: Python
and safetensors say "No space left on device", but torch.save only says its zip writer failed,
so for that one the free space left decides. The Trainer writes trainer_state.json last, and a
checkpoint without a whole one is passed over on resume (qa/run/checkpoints.py), so a save that
failed part-way is never trusted, and the same command resumes once there is room.
"""

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager

from qa.run.ranks import decided_on_main

NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
NO_SPACE_WORDS = ("No space left on device", "Disk quota exceeded", "os error 28", "os error 122")
TORCH_WRITER = "inline_container.cc"  # where torch.save's zip writer reports a failed write
NEARLY_FULL = 16 * 2**20  # less free than this, after a failed write: the write filled the disk


def written_folders(training_args, run_args) -> dict[str, str]:
    """{setting: folder} for each folder the run writes to."""
    folders = {
        "output_dir": training_args.output_dir,
        "results_dir": run_args.results_dir,
        "features_cache_dir": run_args.features_cache_dir,
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


def check_writable(training_args, run_args) -> None:
    """Before anything is loaded: every folder the run writes can be written. The main process
    (the one that writes) probes; every process gets its refusal."""

    def on_main():
        for setting, folder in written_folders(training_args, run_args).items():
            probe_writable(setting, folder)

    decided_on_main(training_args, on_main)


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def says_no_space(err: BaseException) -> bool:
    return any(
        (isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS)
        or any(words in str(e) for words in NO_SPACE_WORDS)
        for e in _chain(err)
    )


def free_space(folder: str):
    return shutil.disk_usage(nearest_existing(folder))


def size_text(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def fullest(folders: list[str]) -> str:
    """The folder whose filesystem has the least room: the one a write failed on."""
    return min(folders, key=lambda folder: free_space(folder).free)


def no_space_message(err: BaseException, folders: list[str]) -> str | None:
    """One line for a write that failed because the disk is full; None for any other error."""
    folder = fullest(folders)
    usage = free_space(folder)
    torch_write = any(TORCH_WRITER in str(e) for e in _chain(err))
    if not (says_no_space(err) or (torch_write and usage.free < NEARLY_FULL)):
        return None
    named = next((e.filename for e in _chain(err) if getattr(e, "filename", None)), None)
    if named:
        folder, usage = named, free_space(named)
    return (
        f"error: no space left on the disk while writing {folder} ({size_text(usage.free)} "
        f"free of {size_text(usage.total)} there). A checkpoint cut short is passed over on "
        "resume: free some space (or lower save_total_limit) and run the same command again to "
        "resume from the last whole checkpoint."
    )


@contextmanager
def stop_cleanly_when_the_disk_is_full(training_args, run_args):
    """A full disk anywhere in the block: the one line above and exit code 1."""
    try:
        yield
    except Exception as err:
        folders = list(written_folders(training_args, run_args).values())
        message = no_space_message(err, folders)
        if message is None:
            raise
        raise SystemExit(message) from None
