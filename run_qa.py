"""Fine-tune a BERT encoder for extractive question answering on SQuAD, evaluate it, show samples.

    accelerate launch run_qa.py configs/squad20pct.json [--flag value ...]

Arguments come from a JSON file, from flags, or from both (flags override the file); see the
dataclasses in qa/run/config.py and `transformers.TrainingArguments`. main() is the pipeline, one
call per stage; each stage below takes what it needs and returns what the next ones use.
"""

import logging
import os
import sys
import time
from dataclasses import replace
from functools import partial
from typing import NamedTuple

# First, before torch loads: OpenMP must start with every core (qa/machine/threads.py says why).
import qa.machine.threads  # noqa: F401  # isort: skip
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding

from qa.answers.postprocess import AnswerRules
from qa.answers.prediction_files import write_prediction_files
from qa.answers.settings import inference_settings, load_settings, save_settings
from qa.atomic import write_json_atomic
from qa.data.load import (
    SquadDataError,
    extra_train_paths,
    fetch_official_files,
    load_raw_datasets,
    points_into,
    resolve_data_path,
)
from qa.data.split import ensure_split
from qa.data.standin import ensure_standin
from qa.data.windows import (
    cached_windows,
    first_questions,
    longest_first,
    prepare_eval_features,
    prepare_train_features,
)
from qa.machine.attention import set_attention_kernel
from qa.machine.flops import precision_peak, utilisation
from qa.machine.hardware import configure_machine
from qa.run.callbacks import EpochsTrained, LogFile, MemoryWatch, StopOnInterrupt
from qa.run.checkpoints import check_output_dirs, last_complete_checkpoint
from qa.run.config import (
    DataArguments,
    RecipeArguments,
    check_window_settings,
    dropout_overrides,
    parse_arguments,
    starting_threshold,
)
from qa.run.interrupt import exit_on_sigterm
from qa.run.outputs import finish_run, parallelism, setup_logging, source_commit
from qa.run.resume import check_resume_settings
from qa.run.storage import check_writable, stop_cleanly_when_the_disk_is_full
from qa.scoring.samples import show_samples
from qa.serve.export import exported_for_evaluation
from qa.serve.model_files import damage_named, resolve_model_path
from trainer_qa import LossNotFinite, QuestionAnsweringTrainer

logger = logging.getLogger("run_qa")


# What to do after an interrupt: a save_only_model checkpoint holds no optimizer and is not resumed.
RESUME_HINT = {
    False: "Run the same command again to resume.",
    True: "It holds the model only (save_only_model): it cannot be resumed.",
}


def main(argv: list[str]) -> dict:
    """The recipe: parse, start, data, model, windows, trainer, train, tune, evaluate, finish."""
    wall_start = time.time()
    args = parse_arguments(argv)
    with stop_cleanly_when_the_disk_is_full(args.training, args.run):
        setup_logging(args.training)
        start = start_run(args)
        examples, checksums = load_examples(args)
        model_path, tokenizer, model = load_checked_model(args)
        threshold = starting_threshold(args.data, model_path, tuning=examples.tune is not None)
        windows = make_windows(args, examples, tokenizer, checksums)
        trainer, watch = build_trainer(args, model, tokenizer, examples, windows, threshold, start)
        results = train(trainer, args, examples.train, watch, start.resume_from)
        if examples.tune is not None:
            tuned = tune_threshold(trainer, args, examples.tune, windows.tune)
            threshold = tuned["tune_best_f1_thresh"]
            results |= tuned
        if args.training.process_index == 0:
            save_settings(
                args.training.output_dir, inference_settings(args.data, threshold, checksums)
            )
        samples = "(not evaluated)"
        if args.training.do_eval:
            metrics, samples = evaluate(trainer, args, examples.eval, windows.eval)
            results |= metrics
        return finish_run(
            trainer,
            argv,
            args,
            results,
            checksums=checksums,
            wall_start=wall_start,
            split_manifest=start.split_manifest,
            null_threshold=threshold,
            samples_markdown=samples,
        )


class RunStart(NamedTuple):
    resume_from: str | None  # the checkpoint training resumes from
    split_manifest: dict | None  # the dev-v2.0 article split's, when the run reads it
    log_file: LogFile | None  # train.log, kept by the main process


def start_run(args: RecipeArguments) -> RunStart:
    """Checks before any work (folders, resume, settings), the data files a run fetches or
    builds, train.log, and the machine's threads, allocator and seed."""
    training_args = args.training
    if not (training_args.do_train or training_args.do_eval):
        raise SystemExit("error: nothing to do: set do_train and/or do_eval.")
    check_writable(training_args, args.run)  # now, not after loading and hours of training
    source_commit()  # the code this run starts with, not what is committed by its end
    resume_from = check_output_dirs(training_args, args.run)
    if training_args.resume_from_checkpoint:
        resume_from = training_args.resume_from_checkpoint
    # The split and any official file not yet here first: the settings a resume is checked
    # against hash the files it trains on.
    fetch_official_files(args.data, training_args)
    split_manifest = prepare_split(args.data, training_args)
    if training_args.do_train:
        check_resume_settings(
            resume_from,
            args.model,
            args.data,
            training_args,
            accept_changes=args.run.resume_with_changed_settings,
        )
    os.makedirs(training_args.output_dir, exist_ok=True)
    is_main = training_args.process_index == 0
    log_file = LogFile(os.path.join(training_args.output_dir, "train.log")) if is_main else None
    if resume_from and training_args.do_train:
        logger.info("Resuming training from %s", resume_from)
    configure_machine(training_args, args.run)
    return RunStart(resume_from, split_manifest, log_file)


def prepare_split(data_args, training_args) -> dict | None:
    """Build the dev-v2.0 article split if a configured file lies in it, and the stand-in made
    from its training part if a training file lies in that; the split's manifest."""
    paths = [data_args.train_file, data_args.validation_file, data_args.threshold_file]
    extras = extra_train_paths(data_args)
    standin = any(points_into(p, "SQUAD_V2_STANDIN_DIR") for p in extras)
    split = any(points_into(p, "SQUAD_V2_SPLIT_DIR") for p in paths + extras)
    if not (split or standin):
        return None
    # local=False: the main process of the whole run builds them, once, on the shared filesystem.
    with training_args.main_process_first(local=False, desc="building the dev-v2.0 split"):
        manifest = ensure_split(resolve_data_path("$SQUAD_V2_SPLIT_DIR"))
        if standin:
            ensure_standin(resolve_data_path("$SQUAD_V2_STANDIN_DIR"))
        return manifest


def make_collator(tokenizer, data_args: DataArguments) -> DataCollatorWithPadding:
    """Pad each batch to its longest window, rounded up to a multiple of pad_to_multiple_of."""
    if data_args.pad_to_max_length:
        return DataCollatorWithPadding(
            tokenizer, padding="max_length", max_length=data_args.max_seq_length
        )
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=data_args.pad_to_multiple_of)


def load_model(model_args, training_args):
    """(model folder, tokenizer, model with a fresh span head); one clear line if either fails."""
    if model_args.backend != "torch":  # make eval of an ONNX export: ONNX Runtime answers
        return exported_for_evaluation(model_args, training_args)
    model_path = resolve_model_path(model_args.model_name_or_path)
    tokenizer_path = resolve_model_path(model_args.tokenizer_name or model_args.model_name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, cache_dir=model_args.cache_dir)
    except OSError as err:
        raise SystemExit(
            f"error: cannot load a tokenizer from {tokenizer_path!r}: not a model folder nor a "
            f"reachable Hub id. Check model_name_or_path (details: {str(err).splitlines()[0]})"
        ) from None
    logger.info("Model %s from %s", model_args.model_name_or_path, model_path)
    logger.info(
        "A newly initialised qa_outputs layer is expected: it is the span head trained here."
    )
    try:
        model = AutoModelForQuestionAnswering.from_pretrained(
            model_path,
            cache_dir=model_args.cache_dir,
            # The kernel is chosen once the model's own attention dropout is known.
            attn_implementation="sdpa",
            **dropout_overrides(model_args, model_path),
        )
    except OSError as err:
        raise SystemExit(
            f"error: cannot load the model {model_args.model_name_or_path!r}: it is neither a "
            "model folder nor a reachable Hub id. Check model_name_or_path "
            f"(details: {str(err).splitlines()[0]})"
        ) from None
    set_attention_kernel(model, model_args.attn_implementation, training_args)
    return model_path, tokenizer, model


class Splits(NamedTuple):
    """One item per split of the run: its questions, or its windows; None where not used."""

    train: object
    eval: object
    tune: object


def load_examples(args: RecipeArguments) -> tuple[Splits, dict]:
    """The questions of each split, and the sha256 of each local file read."""
    examples, checksums = load_raw_datasets(args.data, args.model, args.training)
    splits = Splits(examples["train"], examples["validation"], examples["tune"])
    if args.training.do_train and splits.train is None:
        raise SystemExit("error: do_train needs train_file or dataset_name.")
    if args.training.do_eval and splits.eval is None:
        raise SystemExit("error: do_eval needs validation_file or dataset_name.")
    return splits, checksums


def load_checked_model(args: RecipeArguments):
    """load_model(), with a damaged file named in one line, and the settings checked against it."""
    with damage_named(resolve_model_path(args.model.model_name_or_path)):
        model_path, tokenizer, model = load_model(args.model, args.training)
    load_settings(model_path)  # a trained folder's qa_settings.json must be sound, used or not
    check_window_settings(args.data, tokenizer, model)
    return model_path, tokenizer, model


def make_windows(args: RecipeArguments, examples: Splits, tokenizer, checksums) -> Splits:
    """Tokenised windows of each split, cached under features_cache_dir for later runs; the
    evaluated ones longest first."""
    windows_of = partial(
        cached_windows,
        data_args=args.data,
        tokenizer=tokenizer,
        cache_dir=args.run.features_cache_dir,
        checksums=checksums,
        training_args=args.training,
    )
    train = eval_ = tune = None
    if args.training.do_train:
        train = windows_of(examples.train, prepare_train_features, "train")
        logger.info("Training on %d questions -> %d windows", len(examples.train), len(train))
    if args.training.do_eval:
        eval_ = longest_first(windows_of(examples.eval, prepare_eval_features, "validation"))
        logger.info("Evaluating %d questions -> %d windows", len(examples.eval), len(eval_))
    if examples.tune is not None:
        tune = longest_first(windows_of(examples.tune, prepare_eval_features, "tune"))
    return Splits(train, eval_, tune)


class Watch(NamedTuple):
    """The callbacks whose findings the training stage reads."""

    memory: MemoryWatch
    epochs: EpochsTrained
    interrupt: StopOnInterrupt


def build_trainer(
    args, model, tokenizer, examples: Splits, windows: Splits, threshold: float, start: RunStart
) -> tuple[QuestionAnsweringTrainer, Watch]:
    """The Trainer with its answer rules, learning-curve subset and callbacks."""
    data_args, training_args = args.data, args.training
    training_eval = None
    questions = data_args.eval_questions_during_training
    if training_args.do_train and training_args.eval_strategy != "no" and questions > 0:
        training_eval = first_questions(examples.eval, windows.eval, questions)
        logger.info("During training, scoring the first %d dev questions", len(training_eval[1]))
    rules = AnswerRules(
        data_args.version_2_with_negative,
        data_args.n_best_size,
        data_args.max_answer_length,
        threshold,
    )
    # Ctrl-C or SIGTERM: save at the end of the step, then stop.
    watch = Watch(MemoryWatch(), EpochsTrained(), StopOnInterrupt())
    trainer = QuestionAnsweringTrainer(
        model=model,
        args=training_args,
        train_dataset=windows.train,
        eval_dataset=windows.eval,
        eval_examples=examples.eval,
        processing_class=tokenizer,
        data_collator=make_collator(tokenizer, data_args),
        answer_rules=rules,
        training_eval=training_eval,
        own_model_card=True,  # finish_run writes the run's card (qa/run/card.py)
        # MemoryWatch before the log file: the rss_mib it adds to each metrics line reaches it.
        callbacks=[c for c in (watch.memory, start.log_file, watch.interrupt, watch.epochs) if c],
    )
    # What the launcher's config became: a config accelerate ignores must not pass unnoticed.
    logger.info("Parallelism: %s over %d processes", parallelism(trainer), training_args.world_size)
    if args.run.report_mfu and training_args.process_index == 0:
        precision_peak(training_args)  # a first trial of the matmul peak, before any training
    return trainer, watch


def train(trainer, args: RecipeArguments, train_examples, watch: Watch, resume_from) -> dict:
    """Train, save the model, and return the training metrics with their MFU; {} without
    do_train."""
    training_args, is_main = args.training, args.training.process_index == 0
    if not training_args.do_train:
        return {}
    train_output = train_or_explain(trainer, training_args, resume_from, watch.interrupt)
    trainer.save_model()  # model and tokenizer, loadable by pipeline("question-answering")
    train_windows, config = trainer.train_dataset, trainer.model.config
    metrics = {
        **train_output.metrics,
        "train_examples": len(train_examples),
        "train_features": len(train_windows),
        **watch.memory.summary(),
        "train_seconds_evaluating": round(trainer.seconds_evaluating_in_training, 1),
    }
    report = args.run.report_mfu
    if report and is_main:
        precision_peak(training_args)  # a trial after training, for both figures below
    # MFU (reported by the main process only); then the same without the learning-curve
    # evaluations that train_runtime includes.
    seconds = {
        "train": metrics["train_runtime"],
        "train_steps": metrics["train_runtime"] - metrics["train_seconds_evaluating"],
    }
    for stage, elapsed in seconds.items():
        metrics.update(
            utilisation(
                config, train_windows, elapsed, stage, training_args, report, watch.epochs.epochs
            )
        )
    trainer.log_metrics("train", metrics)
    if is_main:
        write_json_atomic(os.path.join(training_args.output_dir, "train_results.json"), metrics)
    trainer.save_state()
    return metrics


def train_or_explain(trainer, training_args, resume_from, interrupt: StopOnInterrupt):
    """trainer.train(); a stop (signals, a loss gone NaN) ends the run with one line saying
    what was saved and what to do."""
    try:
        train_output = trainer.train(resume_from_checkpoint=resume_from)
    except KeyboardInterrupt:  # a second signal: stopped at once, nothing more saved
        last = last_complete_checkpoint(training_args.output_dir)
        raise SystemExit(
            f"Stopped at step {trainer.state.global_step} without saving; "
            f"{'the last checkpoint is ' + last if last else 'no checkpoint was saved'}. "
            "Run the same command again to resume."
        ) from None
    except LossNotFinite as err:  # stopped before that step's update: nothing of it saved
        last = last_complete_checkpoint(training_args.output_dir)
        kept = f"the last whole checkpoint is {last}" if last else "no checkpoint was saved"
        raise SystemExit(
            f"error: {err}: training stopped, no model or results written ({kept}). Lower "
            f"learning_rate (it was {training_args.learning_rate:g}) or check the training "
            "data, then start afresh: another output_dir, or --overwrite_output_dir true."
        ) from None
    if interrupt.stopped_at is not None:
        # The callback saved at the end of a step; no finish marker is written.
        raise SystemExit(
            f"Interrupted by {interrupt.signal_name or 'a signal to another process'} at "
            f"step {interrupt.stopped_at}; checkpoint saved in "
            f"{training_args.output_dir}/checkpoint-{interrupt.stopped_at}. "
            + RESUME_HINT[training_args.save_only_model]
        )
    return train_output


def tune_threshold(trainer, args: RecipeArguments, tune_examples, tune_windows) -> dict:
    """Choose the no-answer threshold on threshold_file; the trainer answers with it from now
    on. Returns the tune_* metrics (tune_best_f1_thresh is the threshold)."""
    logger.info("*** Tune the no-answer threshold on %s ***", args.data.threshold_file)
    tuned = trainer.predict(tune_windows, tune_examples, metric_key_prefix="tune")
    metrics, threshold = tuned.metrics, tuned.metrics["tune_best_f1_thresh"]
    trainer.answer_rules = replace(trainer.answer_rules, null_score_diff_threshold=threshold)
    logger.info(
        "No-answer threshold %.4f (null score - best span score): tune F1 %.2f there, %.2f at 0",
        threshold,
        metrics["tune_best_f1"],
        metrics["tune_f1"],
    )
    if args.training.process_index == 0:
        out = args.training.output_dir
        write_prediction_files(out, tuned.predictions, args.data.version_2_with_negative, "tune")
        write_json_atomic(os.path.join(out, "tune_results.json"), metrics)
    return metrics


def evaluate(trainer, args: RecipeArguments, eval_examples, eval_windows) -> tuple[dict, str]:
    """Score the dev set; write its answer files, metrics and samples. (metrics, samples
    markdown)."""
    training_args, is_main = args.training, args.training.process_index == 0
    logger.info("*** Evaluate ***")
    metrics, answers = trainer.evaluate_answers()
    if args.run.report_mfu and is_main:
        precision_peak(training_args)  # a trial after the evaluation
    metrics.update(
        utilisation(
            trainer.model.config,
            eval_windows,
            metrics["eval_runtime"],
            "eval",
            training_args,
            args.run.report_mfu,
        )
    )
    trainer.log_metrics("eval", metrics)
    samples = "(not evaluated)"
    if is_main:
        out, v2 = training_args.output_dir, args.data.version_2_with_negative
        write_prediction_files(out, answers, v2, "eval")
        write_json_atomic(os.path.join(out, "eval_results.json"), metrics)
        if args.run.num_samples > 0:
            samples = show_samples(eval_examples, answers, v2, args.run, out)
    return metrics, samples


if __name__ == "__main__":
    exit_on_sigterm()  # one line, not a silent exit -15, before and after the training steps
    try:
        main(sys.argv[1:])
    except SquadDataError as err:
        raise SystemExit(f"error: {err}") from None
