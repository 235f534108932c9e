"""What a run leaves in its folders: the log file while it runs, and its end (card, history,
plots, run metadata, the finish marker, the results copy, the upload). The checks before a run
are in qa/run/checkpoints.py, the samples in qa/scoring/samples.py, the card's pieces in qa/run/card.py."""

import functools
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict

import datasets
import numpy as np
import torch
import transformers
from transformers import TrainingArguments

import qa.machine.threads
import qa.scoring.samples
from qa import ROOT
from qa.atomic import write_json_atomic
from qa.machine.hardware import cpu_description, precision_path
from qa.machine.memory import kernel_cache_from_environment, peak_mib
from qa.run.callbacks import LOG_DATE_FORMAT, LOG_FORMAT
from qa.run.card import card_settings, card_summary, hub_id_of, model_card, write_model_card
from qa.run.checkpoints import (
    FINISHED_MARKER,
    RESULT_FILES,
    refuse_strangers_in_results,
    replace_results,
)
from qa.run.config import without_secrets
from qa.run.plots import draw_run_plots

logger = logging.getLogger("run_qa.outputs")  # a child of run_qa's logger: lands in train.log


SPLIT_NOTE = (
    "Its SQuAD 2.0 questions, unanswerable ones included, come from an article split of the "
    "official 2.0 dev set (training, threshold-tuning and held-out articles; split_manifest.json), "
    "not from the official 2.0 training set; its scores are on the held-out articles only."
)


def setup_logging(training_args: TrainingArguments) -> None:
    """Console for every process at its level; a train.log file for the main process."""
    level = logging.INFO if training_args.should_log else logging.WARNING
    logging.basicConfig(
        format=LOG_FORMAT,
        datefmt=LOG_DATE_FORMAT,
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    logging.getLogger("run_qa").setLevel(level)  # and so that of its children, ours
    datasets.utils.logging.set_verbosity_warning()
    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.get_logger("transformers.trainer").setLevel(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


@functools.cache
def source_commit() -> tuple[str | None, bool | None]:
    """(the checkout's commit, whether tracked files differ from it), read once per process:
    start_run() reads it before loading anything, so a commit made while a long run trains is
    not credited with the run's code. (None, None) outside a git checkout."""
    try:
        git = ["git", "-C", str(ROOT)]
        commit = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        status = [*git, "status", "--porcelain", "--untracked-files=no"]
        changed = subprocess.run(status, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit.stdout.strip(), bool(changed.stdout.strip())


def run_metadata(args, argv, checksums) -> dict:
    model_args, data_args, run_args, training_args = args
    commit, changed = source_commit()
    return {
        "command": ["run_qa.py", *without_secrets(argv)],
        "git_commit": commit,
        "git_uncommitted_changes": changed,
        "model_arguments": asdict(model_args),
        "data_arguments": asdict(data_args),
        "run_arguments": asdict(run_args),
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
            # OpenMP's start-up value (qa/machine/threads.py) and what the launcher had set before it.
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "omp_num_threads_given": qa.machine.threads.OMP_NUM_THREADS_GIVEN,
            "precision": precision_used(training_args),
            # How many kernels oneDNN kept (kernel_cache_capacity or the environment's; None:
            # oneDNN's default, 1,024): it moves the resident peak (docs/speed.md, Memory).
            "onednn_kernel_cache": (kernel_cache_from_environment() or (None, None))[1],
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


def copy_results(output_dir: str, results_dir: str) -> None:
    """Copy the small outputs into results_dir as a whole: build beside it, then swap. An old
    results_dir (overwrite_output_dir was given, checked at start) is moved aside and deleted
    only once the new one is in place. A link is followed: its target gets the results. What
    the swap would replace is checked again: files put there during the run are never lost."""
    refuse_strangers_in_results(results_dir, f" (the results are in {output_dir} only)")
    target = os.path.realpath(results_dir)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staging = f"{target}.incoming-{uuid.uuid4().hex[:8]}"  # a new name: never someone's folder
    os.mkdir(staging)
    try:
        for name in RESULT_FILES:
            source = os.path.join(output_dir, name)
            if os.path.isfile(source):
                shutil.copyfile(source, os.path.join(staging, name))
        replace_results(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # left only when the swap did not happen
    logger.info("Small outputs copied to %s", results_dir)


def finish_run(
    trainer,
    argv,
    args,
    all_results: dict,
    *,
    checksums: dict,
    split_manifest: dict | None,
    null_threshold: float,
    samples_markdown: str,
    wall_start: float,
) -> dict:
    """The end of a run: its time and memory, the model card, the history, plots and run
    metadata, the finish marker (last), the results copy and the upload; all_results."""
    model_args, data_args, run_args, training_args = args
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
            settings=card_settings(data_args, training_args, all_results, null_threshold),
            samples_markdown=samples_markdown,
            extra_limits=SPLIT_NOTE if split_manifest else "",
        )
        # Before any upload: the trainer keeps this card (own_model_card), not a generic one.
        write_model_card(training_args.output_dir, card)
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
                **run_metadata(args, argv, checksums),
                "parallelism": parallelism(trainer),
            },
        )
        write_json_atomic(os.path.join(out, FINISHED_MARKER), all_results)
        if run_args.results_dir:
            copy_results(out, run_args.results_dir)
    if training_args.push_to_hub and training_args.do_train:
        # Through the Trainer: it uploads output_dir (checkpoints left out) with our card.
        trainer.push_to_hub(
            commit_message=f"{os.path.basename(training_args.output_dir)}: {card_summary(all_results)}"
        )
    return all_results
