"""The output folders before a run: a lock on them, the refusal of a finished run, the newest
whole checkpoint to resume from; what makes a checkpoint whole; swapping a results folder.

The Trainer writes a checkpoint's weights, then the optimizer, scheduler and random states, and
trainer_state.json last; a kill can stop it anywhere, even half-way through that last file.

Nothing this recipe did not write is ever moved, replaced or deleted: a folder is moved aside or
replaced only when its own markers show it is a run (or a results copy) of this recipe; any
other content is refused at the start, by name. A folder given as a symbolic link is followed:
its target is what is locked, checked and replaced, never the link itself.
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

from qa.run.ranks import decided_on_main
from qa.run.resume import TRAINING_SETTINGS_FILE

logger = logging.getLogger("run_qa.checkpoints")  # a child of run_qa's logger: lands in train.log

FINISHED_MARKER = "all_results.json"  # written last: its presence means the run completed
# What marks a folder as a run of this recipe, finished or not: the finish marker, the files a run
# writes as it starts (its log, the settings a resume is checked against), a Trainer checkpoint.
RUN_MARKERS = (FINISHED_MARKER, "train.log", TRAINING_SETTINGS_FILE)
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")

RESULT_FILES = [  # small outputs copied to results_dir; the weights stay in output_dir
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "predictions.json",
    "null_odds.json",
    "tune_results.json",
    "tune_predictions.json",
    "tune_null_odds.json",
    "span_predictions.json",
    "tune_span_predictions.json",
    "qa_settings.json",
    "split_manifest.json",
    "samples.md",
    "samples.json",
    "train.log",
    "log_history.json",
    "run_config.json",
    "README.md",  # the model card
    "training_curves.png",
    "dev_scores.png",
]

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


def strangers(folder: str, results: bool = False) -> list[str]:
    """What in `folder` this recipe did not write, by name: [] for a missing or empty folder or
    a run of its own (a marker of RUN_MARKERS, a checkpoint); with `results`, for a results copy
    of its own instead (the finish marker and nothing but RESULT_FILES). A folder without its
    markers is a stranger whole: nothing in it can be told apart from a user's own files."""
    if os.path.islink(folder) or (os.path.exists(folder) and not os.path.isdir(folder)):
        return ["a link or a file where a folder of this recipe would be"]
    if not os.path.isdir(folder):
        return []
    names = sorted(os.listdir(folder))
    if results and FINISHED_MARKER in names:
        return [n for n in names if n not in RESULT_FILES or not os.path.isfile(f"{folder}/{n}")]
    if not results and any(n in RUN_MARKERS or CHECKPOINT_NAME.fullmatch(n) for n in names):
        return []
    return names


def refuse_strangers(folder: str, what: str, results: bool = False) -> None:
    """One line, naming what is there, if `folder` holds anything this recipe did not write."""
    found = strangers(folder, results)
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise SystemExit(
            f"error: {what} {folder} holds files this recipe did not write ({shown}); nothing "
            "was moved or deleted. Move those files elsewhere, or choose another "
            "output_dir/results_dir."
        )


def aside_path(folder: str) -> str:
    return os.path.normpath(folder) + ".replaced"


def refuse_strangers_in_results(results_dir: str, note: str = "") -> None:
    """results_dir is replaced whole: it, and the aside folder the swap uses, must be new,
    empty, or a results copy of this recipe. `note` follows the setting's name."""
    target = os.path.realpath(results_dir)
    refuse_strangers(target, f"results_dir{note}", results=True)
    refuse_strangers(aside_path(target), f"the swap folder of results_dir{note}", results=True)


def replace_results(new: str, target: str) -> None:
    """Put the folder `new` where the results folder `target` (a real path, no link) is. The
    old one is moved aside first and deleted only once the new one is in place: a crash in
    between leaves it whole at aside_path(target), where restore_aside() finds it."""
    aside = aside_path(target)
    if os.path.isdir(aside):  # a results copy of this recipe: refuse_strangers_in_results
        shutil.rmtree(aside)
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
        match = CHECKPOINT_NAME.fullmatch(name)
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
LOCK_LINE = re.compile(r"pid \d+ on .*, since [-\d]+ [:\d]+\n?")  # what hold_folder writes


def refuse_a_stranger_lock(path: str) -> None:
    """The lock file is emptied and rewritten by each run: a file of that name that this recipe
    did not write (a user's own `results.lock`) is refused, never emptied."""
    if not os.path.lexists(path):
        return
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(4096)
    except (OSError, UnicodeDecodeError):  # a folder, a link to nowhere, not text
        text = None
    if text is None or (text and not LOCK_LINE.fullmatch(text)):
        raise SystemExit(
            f"error: {path} is not a lock file of this recipe, which keeps its lock there; "
            "nothing was changed. Move that file elsewhere, or choose another "
            "output_dir/results_dir."
        )


def hold_folder(folder: str) -> None:
    """Refuse to start if another run holds `folder`; otherwise hold it until this process ends.

    The lock is the kernel's (flock) on `<folder>.lock`: it ends with the process however the
    process ends, SIGKILL and crashes included, so it never has to be cleared by hand. The file
    lies beside the folder, not in it, so moving the folder aside (overwrite_output_dir) keeps
    the lock in place; it names the holder for the message of a run refused.
    """
    # A link is followed: two spellings of one folder share one lock.
    path = os.path.realpath(folder) + ".lock"
    if path in _held_locks:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    refuse_a_stranger_lock(path)
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


def check_output_dirs(training_args, run_args) -> str | None:
    """Refuse to replace a finished run; find the checkpoint to resume an unfinished one.

    The main process decides for every process (qa/run/ranks.py), so all of them resume from one
    checkpoint, and none looks at a folder the main process is moving. It first locks the
    folders (hold_folder): a second run on them is refused, on every one of its processes. With
    overwrite_output_dir the old output folder is moved aside whole (to `<dir>.previous`),
    never mixed with the new run's files.
    """
    resume_from = decided_on_main(
        training_args, partial(_check_output_dirs_on_main, training_args, run_args)
    )
    if resume_from and not os.path.isdir(resume_from):
        raise SystemExit(
            f"error: process {training_args.process_index} cannot see {resume_from}, the "
            "checkpoint the main process resumes from: with several machines, output_dir must "
            "be on a filesystem that every machine shares (the same path on each)."
        )
    return resume_from


def _check_output_dirs_on_main(training_args, run_args) -> str | None:
    # First, before anything is moved: a second run on these folders stops here.
    refuse_overlap(training_args.output_dir, run_args.results_dir)
    for folder in (training_args.output_dir, run_args.results_dir):
        if folder:
            hold_folder(folder)
    refuse_what_is_not_ours(training_args.output_dir, run_args)
    if run_args.results_dir and restore_aside(os.path.realpath(run_args.results_dir)):
        logger.warning(
            "%s: put back from beside it, where a results swap that stopped half-way left it",
            run_args.results_dir,
        )
    for folder in (training_args.output_dir, run_args.results_dir):
        finished = folder and os.path.isfile(os.path.join(folder, FINISHED_MARKER))
        if finished and not run_args.overwrite_output_dir:
            raise SystemExit(
                f"error: {folder} already holds a finished run ({FINISHED_MARKER}). Choose another "
                "output_dir/results_dir, or pass --overwrite_output_dir true to replace it."
            )
    output_dir = os.path.realpath(training_args.output_dir)  # a link: its target is the run
    if not os.path.isdir(output_dir) or not os.listdir(output_dir):
        return None
    if run_args.overwrite_output_dir:
        move_run_aside(training_args.output_dir)
        return None
    resume_from = last_complete_checkpoint(output_dir)
    if resume_from:
        logger.info("Every process resumes from %s (chosen by the main process)", resume_from)
    return resume_from


def previous_path(output_dir: str) -> str:
    return os.path.realpath(output_dir) + ".previous"


def refuse_overlap(output_dir: str, results_dir: str | None) -> None:
    """results_dir is replaced whole at the end of a run: it must not hold output_dir, nor lie
    in it (the run's own files, and the lock beside results_dir, would be strangers there)."""
    if not results_dir:
        return
    ours, theirs = os.path.realpath(output_dir), os.path.realpath(results_dir)
    if os.path.commonpath([ours, theirs]) in (ours, theirs):
        raise SystemExit(
            f"error: results_dir {results_dir} and output_dir {output_dir} are the same folder "
            "or one holds the other; results_dir is replaced whole at the end of a run. Choose "
            "a results_dir apart from output_dir."
        )


def refuse_what_is_not_ours(output_dir: str, run_args) -> None:
    """Before anything is moved: every folder the run would write in, move, replace or delete
    holds only what this recipe wrote."""
    real = os.path.realpath(output_dir)
    refuse_strangers(real, "output_dir")
    if run_args.overwrite_output_dir and os.path.isdir(real) and os.listdir(real):
        refuse_strangers(previous_path(output_dir), "the folder for output_dir's previous run,")
    if not run_args.results_dir:
        return
    refuse_strangers_in_results(run_args.results_dir)


def move_run_aside(output_dir: str) -> None:
    """overwrite_output_dir: the old run (checked to be one of this recipe) is kept whole in
    `<output_dir>.previous`, replacing the run kept there before."""
    real, previous = os.path.realpath(output_dir), previous_path(output_dir)
    if os.path.exists(previous):
        logger.warning("Deleting %s, the run before the one now moved there", previous)
        shutil.rmtree(previous)
    os.replace(real, previous)
    if os.path.islink(output_dir):  # the link stays; its target is made again for the new run
        os.mkdir(real)
    logger.info("The previous run in %s is kept whole in %s", output_dir, previous)
