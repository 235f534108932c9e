"""The output folders before a run: a lock on them, the refusal of a finished run, the newest
whole checkpoint to resume from; what makes a checkpoint whole; swapping a results folder.

The Trainer writes a checkpoint's weights, then the optimizer, scheduler and random states, and
trainer_state.json last; a kill can stop it anywhere, even half-way through that last file.
"""

import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from functools import partial

from qa.ranks import decided_on_main

logger = logging.getLogger("run_qa.checkpoints")  # a child of run_qa's logger: lands in train.log

FINISHED_MARKER = "all_results.json"  # written last: its presence means the run completed

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def checkpoint_problem(folder: str) -> str | None:
    """Why a checkpoint cannot be resumed from, in a few words; None if it is whole."""
    state_path = os.path.join(folder, "trainer_state.json")
    if not os.path.isfile(state_path):
        return "no trainer_state.json"
    try:
        with open(state_path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"trainer_state.json does not parse: {err}"
    if not isinstance(state, dict) or type(state.get("global_step")) is not int:
        return "trainer_state.json has no global_step"
    if not any(
        os.path.isfile(os.path.join(folder, name)) and os.path.getsize(os.path.join(folder, name))
        for name in WEIGHT_FILES
    ):
        return "no model weights"
    return None


def aside_path(folder: str) -> str:
    return os.path.normpath(folder) + ".replaced"


def replace_folder(new: str, target: str) -> None:
    """Put the folder `new` where `target` is. The old `target` is moved aside first and deleted
    only once the new one is in place: a crash in between leaves it whole at aside_path(target),
    where restore_aside() finds it."""
    aside = aside_path(target)
    shutil.rmtree(aside, ignore_errors=True)
    if os.path.isdir(target):
        os.replace(target, aside)
    os.replace(new, target)
    shutil.rmtree(aside, ignore_errors=True)


def restore_aside(target: str) -> bool:
    """A swap that stopped half-way left the old folder aside and none in place: put it back."""
    aside = aside_path(target)
    if os.path.isdir(aside) and not os.path.exists(target):
        os.replace(aside, target)
        return True
    return False


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest whole checkpoint: its trainer_state.json (saved last) parses and its weights
    are there. A kill while saving leaves a partial folder (or a half-written state file), and
    resuming from it would fail; such folders are passed over, and the log says so."""
    steps = []
    for name in os.listdir(output_dir):
        match = re.fullmatch(r"checkpoint-(\d+)", name)
        if match:
            steps.append(int(match.group(1)))
    for step in sorted(steps, reverse=True):
        folder = os.path.join(output_dir, f"checkpoint-{step}")
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        logger.warning("Checkpoint %s is incomplete (%s): passed over", folder, problem)
    return None


_held_locks = {}  # lock file -> its open file: the lock lasts as long as this process


def hold_folder(folder: str) -> None:
    """Refuse to start if another run holds `folder`; otherwise hold it until this process ends.

    The lock is the kernel's (flock) on `<folder>.lock`: it ends with the process however the
    process ends, SIGKILL and crashes included, so it never has to be cleared by hand. The file
    lies beside the folder, not in it, so moving the folder aside (overwrite_output_dir) keeps
    the lock in place; it names the holder for the message of a run refused.
    """
    path = os.path.normpath(os.path.abspath(folder)) + ".lock"
    if path in _held_locks:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lock = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open: that is the lock
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "a process that is starting"
        lock.close()
        raise SystemExit(
            f"error: {folder} is in use by another run ({holder}; lock {path}). Wait for it to "
            "end, or choose another output_dir/results_dir."
        ) from None
    except OSError as err:  # a filesystem without locks (some NFS set-ups)
        lock.close()
        logger.warning("Cannot lock %s (%s): a second run on it would not be refused", path, err)
        return
    lock.truncate(0)
    lock.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%F %T')}\n")
    lock.flush()
    _held_locks[path] = lock


def check_output_dirs(training_args, data_args) -> str | None:
    """Refuse to replace a finished run; find the checkpoint to resume an unfinished one.

    The main process decides for every process (qa/ranks.py), so all of them resume from one
    checkpoint, and none looks at a folder the main process is moving. It first locks the
    folders (hold_folder): a second run on them is refused, on every one of its processes. With
    overwrite_output_dir the old output folder is moved aside whole (to `<dir>.previous`),
    never mixed with the new run's files.
    """
    resume_from = decided_on_main(
        training_args, partial(_check_output_dirs_on_main, training_args, data_args)
    )
    if resume_from and not os.path.isdir(resume_from):
        raise SystemExit(
            f"error: process {training_args.process_index} cannot see {resume_from}, the "
            "checkpoint the main process resumes from: with several machines, output_dir must "
            "be on a filesystem that every machine shares (the same path on each)."
        )
    return resume_from


def _check_output_dirs_on_main(training_args, data_args) -> str | None:
    # First, before anything is looked at or moved: a second run on these folders stops here.
    for folder in (training_args.output_dir, data_args.results_dir):
        if folder:
            hold_folder(folder)
    if data_args.results_dir and restore_aside(data_args.results_dir):
        logger.warning(
            "%s: put back from beside it, where a results swap that stopped half-way left it",
            data_args.results_dir,
        )
    for folder in (training_args.output_dir, data_args.results_dir):
        finished = folder and os.path.isfile(os.path.join(folder, FINISHED_MARKER))
        if finished and not data_args.overwrite_output_dir:
            raise SystemExit(
                f"error: {folder} already holds a finished run ({FINISHED_MARKER}). Choose another "
                "output_dir/results_dir, or pass --overwrite_output_dir true to replace it."
            )
    output_dir = training_args.output_dir
    if not os.path.isdir(output_dir) or not os.listdir(output_dir):
        return None
    if data_args.overwrite_output_dir:
        previous = output_dir + ".previous"
        if os.path.exists(previous):
            logger.warning("Deleting %s, the run before the one now moved there", previous)
            shutil.rmtree(previous)
        os.replace(output_dir, previous)
        logger.info("The previous run in %s is kept whole in %s", output_dir, previous)
        return None
    resume_from = last_complete_checkpoint(output_dir)
    if resume_from:
        logger.info("Every process resumes from %s (chosen by the main process)", resume_from)
    return resume_from
