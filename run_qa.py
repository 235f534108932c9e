"""Fine-tune a BERT encoder for extractive question answering on SQuAD, evaluate it, show samples.

    accelerate launch run_qa.py configs/squad20pct.json [--flag value ...]

Arguments come from a JSON file, from flags, or from both (flags override the file); see the
dataclasses in qa/run/config.py and `transformers.TrainingArguments`.
"""

import logging
import os
import sys
import time
from functools import partial

# First, before torch loads: OpenMP must start with every core (qa/machine/threads.py says why).
import qa.machine.threads  # noqa: F401  # isort: skip
from transformers import (
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
)

import qa.answers.prediction_files
from qa.answers.settings import inference_settings, load_settings, save_settings
from qa.atomic import write_json_atomic
from qa.data.load import (
    SquadDataError,
    fetch_official_files,
    load_raw_datasets,
    points_into,
    resolve_data_path,
)
from qa.data.split import ensure_split
from qa.data.standin import ensure_standin
from qa.data.windows import (
    first_questions,
    longest_first,
    prepare_eval_features,
    prepare_train_features,
    tokenize,
)
from qa.machine.attention import set_attention_kernel
from qa.machine.flops import precision_peak, utilisation
from qa.machine.hardware import configure_machine
from qa.run.callbacks import EpochsTrained, LogFile, MemoryWatch, StopOnInterrupt
from qa.run.checkpoints import check_output_dirs, last_complete_checkpoint
from qa.run.config import (
    DataArguments,
    check_window_settings,
    dropout_overrides,
    parse_arguments,
    resolve_null_threshold,
)
from qa.run.interrupt import exit_on_sigterm
from qa.run.outputs import finish_run, parallelism, setup_logging
from qa.run.resume import check_resume_settings
from qa.run.storage import check_writable, stop_cleanly_when_the_disk_is_full
from qa.scoring.metric import TRAINING_EVAL_PREFIX, load_metric, metric_inputs
from qa.scoring.samples import show_samples
from qa.serve.export import exported_for_evaluation
from qa.serve.model_files import damage_named, resolve_model_path
from trainer_qa import LossNotFinite, QuestionAnsweringTrainer
from utils_qa import postprocess_qa_predictions

logger = logging.getLogger("run_qa")


# What to do after an interrupt: a save_only_model checkpoint holds no optimizer and is not resumed.
RESUME_HINT = {
    False: "Run the same command again to resume.",
    True: "It holds the model only (save_only_model): it cannot be resumed.",
}


def prepare_split(data_args, training_args) -> dict | None:
    """Build the dev-v2.0 article split if a configured file lies in it, and the stand-in made
    from its training part if a training file lies in that; the split's manifest."""
    paths = [data_args.train_file, data_args.validation_file, data_args.threshold_file]
    standin = any(points_into(p, "SQUAD_V2_STANDIN_DIR") for p in data_args.extra_train_files)
    split = any(points_into(p, "SQUAD_V2_SPLIT_DIR") for p in paths + data_args.extra_train_files)
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


def main(argv: list[str]) -> dict:
    wall_start = time.time()
    model_args, data_args, training_args = parse_arguments(argv)
    with stop_cleanly_when_the_disk_is_full(training_args, data_args):
        return train_and_evaluate(argv, model_args, data_args, training_args, wall_start)


def train_and_evaluate(argv, model_args, data_args, training_args, wall_start) -> dict:
    setup_logging(training_args)
    if not (training_args.do_train or training_args.do_eval):
        raise SystemExit("error: nothing to do: set do_train and/or do_eval.")
    check_writable(training_args, data_args)  # now, not after loading and hours of training
    resume_from = check_output_dirs(training_args, data_args)
    if training_args.resume_from_checkpoint:
        resume_from = training_args.resume_from_checkpoint
    # The split and any official file not yet here first: the settings a resume is checked
    # against hash the files it trains on.
    fetch_official_files(data_args, training_args)
    split_manifest = prepare_split(data_args, training_args)
    if training_args.do_train:
        check_resume_settings(resume_from, model_args, data_args, training_args)
    is_main = training_args.process_index == 0
    os.makedirs(training_args.output_dir, exist_ok=True)
    log_file = LogFile(os.path.join(training_args.output_dir, "train.log")) if is_main else None
    if resume_from and training_args.do_train:
        logger.info("Resuming training from %s", resume_from)
    configure_machine(training_args, data_args)

    examples, checksums = load_raw_datasets(data_args, model_args, training_args)
    train_examples, eval_examples, tune_examples = (
        examples["train"],
        examples["validation"],
        examples["tune"],
    )
    if training_args.do_train and train_examples is None:
        raise SystemExit("error: do_train needs train_file or dataset_name.")
    if training_args.do_eval and eval_examples is None:
        raise SystemExit("error: do_eval needs validation_file or dataset_name.")

    with damage_named(resolve_model_path(model_args.model_name_or_path)):  # one line per file
        model_path, tokenizer, model = load_model(model_args, training_args)
    load_settings(model_path)  # a trained folder's qa_settings.json must be sound, used or not
    check_window_settings(data_args, tokenizer, model)
    resolve_null_threshold(data_args, model_path, tune_examples is not None)

    # Tokenised windows, cached under features_cache_dir for later runs on the same data.
    windows = partial(tokenize, data_args=data_args, tokenizer=tokenizer, checksums=checksums,
                      training_args=training_args)  # fmt: skip
    train_features = eval_features = None
    if training_args.do_train:
        train_features = windows(train_examples, prepare_train_features, split="train")
        logger.info(
            "Training on %d questions -> %d windows", len(train_examples), len(train_features)
        )
    if training_args.do_eval:
        eval_features = longest_first(
            windows(eval_examples, prepare_eval_features, split="validation")
        )
        logger.info("Evaluating %d questions -> %d windows", len(eval_examples), len(eval_features))
    if tune_examples is not None:
        tune_features = longest_first(windows(tune_examples, prepare_eval_features, split="tune"))

    metric = load_metric()
    latest_answers = {}  # stage -> answers of its last post-processing, for the samples

    def post_process(examples, features, logits, stage):
        start_logits, end_logits = logits
        answers = postprocess_qa_predictions(
            examples,
            features,
            start_logits,
            end_logits,
            version_2_with_negative=data_args.version_2_with_negative,
            n_best_size=data_args.n_best_size,
            max_answer_length=data_args.max_answer_length,
            null_score_diff_threshold=data_args.null_score_diff_threshold,
            progress=is_main and not training_args.disable_tqdm,
        )
        latest_answers[stage] = answers
        if is_main and stage != TRAINING_EVAL_PREFIX:  # a learning-curve point writes no files
            qa.answers.prediction_files.write_prediction_files(
                training_args.output_dir, answers, data_args.version_2_with_negative, stage
            )
        predictions = metric_inputs(answers, data_args.version_2_with_negative)
        references = [{"id": i, "answers": a} for i, a in zip(examples["id"], examples["answers"])]
        return EvalPrediction(predictions=predictions, label_ids=references)

    def compute_metrics(prediction: EvalPrediction) -> dict:
        return metric.compute(
            predictions=prediction.predictions,
            references=prediction.label_ids,
            version_2_with_negative=data_args.version_2_with_negative,
            no_answer_threshold=data_args.null_score_diff_threshold,
        )

    training_eval = None
    if (
        training_args.do_train
        and training_args.eval_strategy != "no"
        and data_args.eval_questions_during_training > 0
    ):
        training_eval = first_questions(
            eval_examples, eval_features, data_args.eval_questions_during_training
        )
        logger.info("During training, scoring the first %d dev questions", len(training_eval[1]))

    memory, trained = MemoryWatch(), EpochsTrained()
    interrupt = StopOnInterrupt()  # Ctrl-C or SIGTERM: save at the end of the step, then stop
    trainer = QuestionAnsweringTrainer(
        model=model,
        args=training_args,
        train_dataset=train_features,
        eval_dataset=eval_features,
        eval_examples=eval_examples,
        processing_class=tokenizer,
        data_collator=make_collator(tokenizer, data_args),
        post_process_function=post_process,
        compute_metrics=compute_metrics,
        training_eval=training_eval,
        # MemoryWatch before the log file: the rss_mib it adds to each metrics line reaches it.
        callbacks=[c for c in (memory, log_file, interrupt, trained) if c],
    )

    # What the launcher's config became: a config accelerate ignores must not pass unnoticed.
    logger.info("Parallelism: %s over %d processes", parallelism(trainer), training_args.world_size)

    all_results, samples_markdown = {}, "(not evaluated)"
    if data_args.report_mfu and is_main:
        precision_peak(training_args)  # a first trial of the matmul peak, before any training
    if training_args.do_train:
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
        trainer.save_model()  # model and tokenizer, loadable by pipeline("question-answering")
        metrics = {
            **train_output.metrics,
            "train_examples": len(train_examples),
            "train_features": len(train_features),
            **memory.summary(),
        }
        metrics["train_seconds_evaluating"] = round(trainer.seconds_evaluating_in_training, 1)
        if data_args.report_mfu and is_main:
            precision_peak(training_args)  # a trial after training, for both figures below
        # MFU (reported by the main process only); then the same without the learning-curve
        # evaluations that train_runtime includes.
        metrics.update(utilisation(model.config, train_features, metrics["train_runtime"], "train",
                                   training_args, data_args.report_mfu, trained.epochs))  # fmt: skip
        steps_seconds = metrics["train_runtime"] - metrics["train_seconds_evaluating"]
        metrics.update(utilisation(model.config, train_features, steps_seconds, "train_steps",
                                   training_args, data_args.report_mfu, trained.epochs))  # fmt: skip
        trainer.log_metrics("train", metrics)
        if is_main:
            write_json_atomic(os.path.join(training_args.output_dir, "train_results.json"), metrics)
        trainer.save_state()
        all_results.update(metrics)

    if tune_examples is not None:
        logger.info("*** Tune the no-answer threshold on %s ***", data_args.threshold_file)
        tuned = trainer.predict(tune_features, tune_examples, metric_key_prefix="tune").metrics
        data_args.null_score_diff_threshold = tuned["tune_best_f1_thresh"]
        logger.info(
            "No-answer threshold %.4f (null score - best span score): tune F1 %.2f there, "
            "%.2f at 0", tuned["tune_best_f1_thresh"], tuned["tune_best_f1"], tuned["tune_f1"],
        )  # fmt: skip
        if is_main:
            write_json_atomic(os.path.join(training_args.output_dir, "tune_results.json"), tuned)
        all_results.update(tuned)
    if is_main:
        save_settings(training_args.output_dir, inference_settings(data_args, checksums))

    if training_args.do_eval:
        logger.info("*** Evaluate ***")
        metrics = trainer.evaluate()
        if data_args.report_mfu and is_main:
            precision_peak(training_args)  # a trial after the evaluation
        metrics.update(utilisation(model.config, eval_features, metrics["eval_runtime"],
                                   "eval", training_args, data_args.report_mfu))  # fmt: skip
        trainer.log_metrics("eval", metrics)
        if is_main:
            write_json_atomic(os.path.join(training_args.output_dir, "eval_results.json"), metrics)
        all_results.update(metrics)
        if is_main and data_args.num_samples > 0:
            samples_markdown = show_samples(
                eval_examples, latest_answers["eval"], data_args, training_args
            )

    return finish_run(
        trainer, argv, model_args, data_args, training_args, all_results, checksums=checksums,
        split_manifest=split_manifest, samples_markdown=samples_markdown, wall_start=wall_start,
    )  # fmt: skip


if __name__ == "__main__":
    exit_on_sigterm()  # one line, not a silent exit -15, before and after the training steps
    try:
        main(sys.argv[1:])
    except SquadDataError as err:
        raise SystemExit(f"error: {err}") from None
