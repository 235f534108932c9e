"""Resume a checkpoint only with the settings it was trained with, unless told to accept others.

A resume that silently changes the learning rate, the data or the batch trains one model with
two recipes, and nothing in its results says so. When training starts, the main process writes
the settings that decide what is trained to output_dir/training_settings.json; a resume compares
the checkpoint's (that file, beside the checkpoint) with the command's own and refuses on any
difference, in one line naming each, unless resume_with_changed_settings accepts them: then a
warning names them and the file is rewritten with the settings the next checkpoints are made
with. A checkpoint from before this file existed resumes with a warning.
"""

import json
import logging
import os

from qa.atomic import write_json_atomic
from qa.data.load import resolve_data_path, sha256_of
from qa.run.ranks import decided_on_main
from qa.user_files import read_settings_object

logger = logging.getLogger("run_qa.resume")  # a child of run_qa's logger: lands in train.log

TRAINING_SETTINGS_FILE = "training_settings.json"

# What decides the weights trained, and only that: a change to one of these makes the resumed
# steps part of another recipe. Everything else may change between a stop and its resume, as it
# changes no weight: paths (output_dir, results_dir, caches; data files count by their content,
# below), logging, report_to, evaluation and saving settings, num_samples, threads, dataloader
# workers, and kernels that compute the same thing (attn_implementation, pad_to_max_length,
# pad_to_multiple_of, gradient_checkpointing, torch_compile).
MODEL_SETTINGS = ("model_name_or_path", "tokenizer_name", "attention_dropout", "hidden_dropout")
DATA_SETTINGS = (
    "dataset_name",
    "dataset_config_name",
    "question_column",  # a table's columns: the same file read through others is other data
    "context_column",
    "answer_column",
    "answer_start_column",
    "train_fraction",
    "train_fraction_seed",
    "max_train_samples",
    "extra_train_repeats",
    "version_2_with_negative",
    "max_seq_length",
    "doc_stride",
)
TRAINING_SETTINGS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
    "data_seed",
    "lr_scheduler_type",
    "lr_scheduler_kwargs",
    "warmup_steps",
    "optim",
    "optim_args",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "label_smoothing_factor",
    "neftune_noise_alpha",
    "average_tokens_across_devices",
    "bf16",
    "fp16",
    "train_sampling_strategy",
    "dataloader_drop_last",
)


def file_digest(configured: str) -> str:
    try:
        return sha256_of(resolve_data_path(configured))
    except OSError as err:  # the data loader says what is wrong with the file, later
        return f"unreadable ({err.strerror})"


def training_settings(model_args, data_args, training_args) -> dict:
    """The settings that decide what is trained, as JSON values."""
    settings = {name: getattr(model_args, name) for name in MODEL_SETTINGS}
    settings |= {name: getattr(data_args, name) for name in DATA_SETTINGS}
    settings |= {name: getattr(training_args, name) for name in TRAINING_SETTINGS}
    settings["processes"] = training_args.world_size  # with the per-device batch: the global one
    # load_best_model_at_end keeps the checkpoint that scored best, so the score decides the
    # weights kept; a resume compares new scores with the best one its checkpoint recorded.
    settings["best model chosen by"] = best_model_choice(data_args, training_args)
    # By content, not by path: the same file under another SQUAD_DIR is the same data.
    files = {"train_file": data_args.train_file}
    files |= {f"extra_train_files[{i}]": p for i, p in enumerate(data_args.extra_train_files)}
    unanswerable = data_args.extra_train_unanswerable_files
    files |= {f"extra_train_unanswerable_files[{i}]": p for i, p in enumerate(unanswerable)}
    settings |= {f"{name} sha256": file_digest(path) for name, path in files.items() if path}
    # Through JSON once, so that what is compared is what a file holds (enums, tuples, floats).
    return json.loads(json.dumps(settings, default=str))


def best_model_choice(data_args, training_args) -> str | None:
    if not training_args.load_best_model_at_end:
        return None
    questions = data_args.eval_questions_during_training
    scored = f"the first {questions} dev questions" if questions else "the dev set"
    return f"{training_args.metric_for_best_model} on {scored}"


def shown(value) -> str:
    if isinstance(value, str) and len(value) == 64:  # a sha256: its start tells them apart
        return value[:12] + "..."
    return json.dumps(value)


def differences(before: dict, now: dict) -> list[str]:
    """'setting: checkpoint value -> now' for each setting that changed. A setting only one side
    records (the list above grew or shrank since the checkpoint) is not compared."""
    return [
        f"{name}: {shown(before[name])} -> {shown(now[name])}"
        for name in now
        if name in before and before[name] != now[name]
    ]


def check_resume_settings(
    resume_from, model_args, data_args, training_args, accept_changes: bool
) -> None:
    """Refuse, on every process, to resume `resume_from` with other training settings; record
    this command's. The main process reads, hashes and writes; the others follow its answer."""

    def on_main():
        now = training_settings(model_args, data_args, training_args)
        if resume_from:
            compare(resume_from, now, accept_changes)
            refuse_a_model_only_checkpoint(resume_from)
        # After a resume too: the next checkpoints are made with these (output_dir may be new).
        write_json_atomic(os.path.join(training_args.output_dir, TRAINING_SETTINGS_FILE), now)

    decided_on_main(training_args, on_main)


def refuse_a_model_only_checkpoint(resume_from: str) -> None:
    """save_only_model leaves out the optimizer, the learning-rate schedule and the random
    states (rng_state*.pth, always saved otherwise): the Trainer would resume with all three
    started afresh, without a word, and train another model than one run would."""
    if any(n.startswith("rng_state") for n in os.listdir(resume_from)):
        return
    raise SystemExit(
        f"error: {resume_from} holds the model only (saved with save_only_model): no optimizer, "
        "learning-rate schedule or random state to resume from. Start afresh (pass "
        "--overwrite_output_dir true, or choose a new output_dir); to make checkpoints that "
        "resume, leave save_only_model false."
    )


def compare(resume_from: str, now: dict, accept: bool) -> None:
    recorded = os.path.join(os.path.dirname(os.path.normpath(resume_from)), TRAINING_SETTINGS_FILE)
    if not os.path.isfile(recorded):
        logger.warning(
            "%s has no %s (saved before settings were recorded): resuming without comparing its "
            "settings with this command's",
            resume_from,
            TRAINING_SETTINGS_FILE,
        )
        return
    changed = differences(read_recorded(recorded), now)
    if changed and not accept:
        raise SystemExit(
            f"error: {resume_from} was trained with other settings than this command's: "
            f"{'; '.join(changed)}. Resuming would train one model with two recipes: give the "
            "settings it was started with, choose a new output_dir, or pass "
            "--resume_with_changed_settings true to resume with these anyway."
        )
    if changed:
        logger.warning(
            "Resuming %s with changed settings (resume_with_changed_settings): %s",
            resume_from,
            "; ".join(changed),
        )


def read_recorded(path: str) -> dict:
    return read_settings_object(path, fix="Delete it to resume without comparing settings.")
