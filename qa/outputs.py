"""What a run leaves in its folders: the log file, the checks and checkpoint search before it
starts, the samples, and the end of a run (card, history, plots, run metadata, the finish marker,
the results copy, the upload)."""

import fcntl
import json
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from functools import partial

import datasets
import numpy as np
import torch
import transformers
from transformers import TrainerCallback, TrainingArguments

import qa.samples
import qa.threads
from qa import ROOT
from qa.card import hub_id_of, model_card, write_model_card
from qa.checkpoints import checkpoint_problem, replace_folder, restore_aside
from qa.config import DataArguments, cpu_description, precision_path
from qa.io import write_json_atomic, write_text_atomic
from qa.memory import peak_mib
from qa.metric import load_metric_functions
from qa.plots import draw_run_plots
from qa.ranks import decided_on_main

logger = logging.getLogger("run_qa.outputs")  # a child of run_qa's logger: lands in train.log


FINISHED_MARKER = "all_results.json"  # written last: its presence means the run completed


SPLIT_NOTE = (
    "Its SQuAD 2.0 questions, unanswerable ones included, come from an article split of the "
    "official 2.0 dev set (training, threshold-tuning and held-out articles; split_manifest.json), "
    "not from the official 2.0 training set; its scores are on the held-out articles only."
)


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


def setup_logging(training_args: TrainingArguments) -> None:
    """Console for every process at its level; a train.log file for the main process."""
    level = logging.INFO if training_args.should_log else logging.WARNING
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    logging.getLogger("run_qa").setLevel(level)  # and so that of its children, ours
    datasets.utils.logging.set_verbosity_warning()
    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.get_logger("transformers.trainer").setLevel(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


class LogFile(TrainerCallback):
    """Keeps train.log: our messages, the Trainer's, and every logged metrics dict."""

    def __init__(self, path: str):
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"
            )
        )
        for name in ("run_qa", "transformers.trainer"):
            logging.getLogger(name).addHandler(self.handler)
        self.history = logging.getLogger("run_qa.history")
        self.history.propagate = False  # the progress bar already prints these on the console
        self.history.setLevel(logging.INFO)
        self.history.addHandler(self.handler)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.history.info(json.dumps({"step": state.global_step, **logs}))


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


def check_output_dirs(training_args: TrainingArguments, data_args: DataArguments) -> str | None:
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


def show_samples(examples, answers, data_args, training_args) -> str:
    """Write samples.json/.md for a reproducible draw of dev questions, and print them."""
    squad = load_metric_functions()
    v2 = data_args.version_2_with_negative

    def score(prediction, texts):
        exact, f1 = squad.score_question(prediction, squad.gold_answers(texts, v2), v2)
        return 100.0 * exact, 100.0 * f1

    samples = qa.samples.pick_samples(
        examples, answers, data_args.num_samples, training_args.seed, score
    )
    markdown = qa.samples.render_markdown(samples)
    write_json_atomic(os.path.join(training_args.output_dir, "samples.json"), samples)
    write_text_atomic(os.path.join(training_args.output_dir, "samples.md"), markdown)
    print(f"\n{len(samples)} sample predictions from the dev set:\n\n{markdown}", flush=True)
    return markdown


def run_metadata(model_args, data_args, training_args, argv, checksums) -> dict:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "command": ["run_qa.py", *argv],
        "git_commit": commit,
        "model_arguments": asdict(model_args),
        "data_arguments": asdict(data_args),
        "training_arguments": training_args.to_dict(),
        "data_files": checksums,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "datasets": datasets.__version__,
            "numpy": np.__version__,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "processes": training_args.world_size,
            "cpu_model": cpu_description()[0],
            "torch_threads": torch.get_num_threads(),
            # OpenMP's start-up value (qa/threads.py) and what the launcher had set before it.
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "omp_num_threads_given": qa.threads.OMP_NUM_THREADS_GIVEN,
            "precision": precision_used(training_args),
        },
    }


def parallelism(trainer) -> str:
    """How accelerate spread the run: NO, MULTI_CPU, MULTI_GPU (DDP), FSDP or DEEPSPEED."""
    return trainer.accelerator.distributed_type.value


def precision_used(training_args) -> str:
    """The precision the run trained and scored in, and what `--bf16 auto` picks here and why
    (they differ when bf16 or fp16 was forced on or off)."""
    used = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"
    auto = precision_path()[1]
    return auto if auto.startswith(f"{used}:") else f"{used}, forced (auto: {auto})"


def card_summary(results: dict) -> str:
    scores = [f"{k.removeprefix('eval_')} {v:.2f}" for k, v in results.items()
              if k in ("eval_exact_match", "eval_exact", "eval_f1")]  # fmt: skip
    return ", ".join(scores) or "trained, not evaluated"


def total_train_batch(training_args) -> int:
    """Questions' windows per optimizer step: per device x processes x accumulation steps."""
    return (
        training_args.per_device_train_batch_size
        * training_args.world_size
        * training_args.gradient_accumulation_steps
    )


def card_settings(data_args, training_args, results) -> dict:
    return {
        "training questions": results.get("train_examples"),
        "train_fraction": data_args.train_fraction,
        "epochs": training_args.num_train_epochs,
        "batch size (total)": total_train_batch(training_args),
        "learning rate": training_args.learning_rate,
        "warm-up": training_args.warmup_steps,
        "max_seq_length / doc_stride": f"{data_args.max_seq_length} / {data_args.doc_stride}",
        "bf16": training_args.bf16,
        "seed": training_args.seed,
        **(
            {"no-answer threshold (null - best span score)":
             round(data_args.null_score_diff_threshold, 4),
             "threshold tuned on": data_args.threshold_file or "not tuned"}
            if data_args.version_2_with_negative else {}
        ),
        **({"extra training files": ", ".join(data_args.extra_train_files)}
           if data_args.extra_train_files else {}),
    }  # fmt: skip


def copy_results(output_dir: str, results_dir: str) -> None:
    """Copy the small outputs into results_dir as a whole: build beside it, then swap. An old
    results_dir (overwrite_output_dir was given, checked at start) is moved aside and deleted
    only once the new one is in place."""
    staging = os.path.normpath(results_dir) + ".incoming"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for name in RESULT_FILES:
        source = os.path.join(output_dir, name)
        if os.path.isfile(source):
            shutil.copyfile(source, os.path.join(staging, name))
    replace_folder(staging, results_dir)
    logger.info("Small outputs copied to %s", results_dir)


def finish_run(
    trainer,
    argv,
    model_args,
    data_args,
    training_args,
    all_results: dict,
    *,
    checksums: dict,
    split_manifest: dict | None,
    samples_markdown: str,
    wall_start: float,
) -> dict:
    """The end of a run: its time and memory, the model card, the history, plots and run
    metadata, the finish marker (last), the results copy and the upload; all_results."""
    is_main = training_args.process_index == 0
    all_results["run_wall_seconds"] = round(time.time() - wall_start, 1)
    # This process's own peak resident memory (Linux reports KiB), not the launcher's.
    all_results["peak_rss_mib"] = round(peak_mib())
    logger.info("Peak resident memory of this process: %d MiB", all_results["peak_rss_mib"])
    if is_main and training_args.do_train:
        card = model_card(
            model_name=training_args.hub_model_id or os.path.basename(training_args.output_dir),
            base_model=hub_id_of(model_args.model_name_or_path),
            version_2=data_args.version_2_with_negative,
            metrics=all_results,
            settings=card_settings(data_args, training_args, all_results),
            samples_markdown=samples_markdown,
            extra_limits=SPLIT_NOTE if split_manifest else "",
        )
        write_model_card(training_args.output_dir, card)
        # push_to_hub() writes the card before uploading: ours, not the Trainer's generic one.
        trainer.model_card_writer = partial(write_model_card, training_args.output_dir, card)
    if is_main:
        out = training_args.output_dir
        if split_manifest:
            write_json_atomic(os.path.join(out, "split_manifest.json"), split_manifest)
        write_json_atomic(os.path.join(out, "log_history.json"), trainer.state.log_history)
        for path in draw_run_plots(out):
            logger.info("Plot: %s", path)
        write_json_atomic(
            os.path.join(out, "run_config.json"),
            {
                **run_metadata(model_args, data_args, training_args, argv, checksums),
                "parallelism": parallelism(trainer),
            },
        )
        write_json_atomic(os.path.join(out, FINISHED_MARKER), all_results)
        if data_args.results_dir:
            copy_results(out, data_args.results_dir)
    if training_args.push_to_hub and training_args.do_train:
        # Through the Trainer: it uploads output_dir (checkpoints left out) with our card.
        trainer.push_to_hub(
            commit_message=f"{os.path.basename(training_args.output_dir)}: {card_summary(all_results)}"
        )
    return all_results
