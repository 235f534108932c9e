"""Fine-tune a BERT encoder for extractive question answering on SQuAD, evaluate it, show samples.

    accelerate launch run_qa.py configs/squad20pct.json [--flag value ...]

Arguments come from a JSON file, from flags, or from both (flags override the file); see the
dataclasses in qa/config.py and `transformers.TrainingArguments`.
"""

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import torch
import transformers
from transformers import (
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

import qa.samples
from qa.card import hub_id_of, model_card, write_model_card
from qa.checkpoints import checkpoint_problem, replace_folder, restore_aside
from qa.config import (
    DataArguments,
    attention_dropout_override,
    check_window_settings,
    cpu_description,
    cpu_threads,
    parse_arguments,
    precision_path,
    resolve_model_path,
    resolve_null_threshold,
)
from qa.data import SquadDataError, load_raw_datasets, resolve_data_path, uses_split
from qa.features import longest_first, prepare_eval_features, prepare_train_features, tokenize
from qa.flops import utilisation
from qa.interrupt import StopOnInterrupt
from qa.io import write_json_atomic, write_text_atomic
from qa.memory import MemoryWatch, peak_mib
from qa.metric import load_metric, load_metric_functions, metric_inputs
from qa.plots import draw_run_plots
from qa.settings import inference_settings, save_settings
from qa.split import ensure_split
from trainer_qa import TRAINING_EVAL_PREFIX, QuestionAnsweringTrainer
from utils_qa import postprocess_qa_predictions

logger = logging.getLogger("run_qa")
ROOT = Path(__file__).resolve().parent
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
    logger.setLevel(level)
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


def check_output_dirs(training_args: TrainingArguments, data_args: DataArguments) -> str | None:
    """Refuse to replace a finished run; find the checkpoint to resume an unfinished one.

    With overwrite_output_dir the old output folder is moved aside whole (to `<dir>.previous`),
    never mixed with the new run's files.
    """
    if data_args.results_dir:
        with training_args.main_process_first(desc="checking results_dir"):
            if training_args.process_index == 0 and restore_aside(data_args.results_dir):
                logger.warning(
                    "%s: put back from beside it, where a results swap that stopped half-way "
                    "left it",
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
        with training_args.main_process_first(desc="moving the previous run aside"):
            if training_args.process_index == 0:
                shutil.rmtree(output_dir + ".previous", ignore_errors=True)
                os.replace(output_dir, output_dir + ".previous")
        return None
    return last_complete_checkpoint(output_dir)


def prepare_split(data_args, training_args) -> dict | None:
    """Build the dev-v2.0 article split if a configured file lies in it; its manifest."""
    paths = [data_args.train_file, data_args.validation_file, data_args.threshold_file]
    if not any(uses_split(p) for p in paths + data_args.extra_train_files):
        return None
    with training_args.main_process_first(desc="building the dev-v2.0 split"):
        return ensure_split(resolve_data_path("$SQUAD_V2_SPLIT_DIR"))


def make_collator(tokenizer, data_args: DataArguments) -> DataCollatorWithPadding:
    """Pad each batch to its longest window, rounded up to a multiple of 8 for the kernels."""
    if data_args.pad_to_max_length:
        return DataCollatorWithPadding(
            tokenizer, padding="max_length", max_length=data_args.max_seq_length
        )
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)


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
            "precision": precision_path()[1],
        },
    }


def main(argv: list[str]) -> dict:
    wall_start = time.time()
    model_args, data_args, training_args = parse_arguments(argv)
    setup_logging(training_args)
    if not (training_args.do_train or training_args.do_eval):
        raise SystemExit("error: nothing to do: set do_train and/or do_eval.")
    resume_from = check_output_dirs(training_args, data_args)
    if training_args.resume_from_checkpoint:
        resume_from = training_args.resume_from_checkpoint
    is_main = training_args.process_index == 0
    os.makedirs(training_args.output_dir, exist_ok=True)
    log_file = LogFile(os.path.join(training_args.output_dir, "train.log")) if is_main else None
    if resume_from and training_args.do_train:
        logger.info("Resuming training from %s", resume_from)
    if training_args.device.type == "cpu":
        torch.set_num_threads(cpu_threads(data_args.cpu_threads))
    logger.info(
        "Process %d of %d, device %s, bf16 %s, %d CPU threads; auto precision would pick %s",
        training_args.process_index,
        training_args.world_size,
        training_args.device,
        training_args.bf16,
        torch.get_num_threads(),
        precision_path()[1],
    )
    set_seed(training_args.seed)
    if torch.cuda.is_available():  # tf32 matrix products: free speed on Ampere and later
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    split_manifest = prepare_split(data_args, training_args)
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
            attn_implementation=model_args.attn_implementation,
            **attention_dropout_override(model_args, model_path),
        )
    except OSError as err:
        raise SystemExit(
            f"error: cannot load the model {model_args.model_name_or_path!r}: it is neither a "
            "model folder nor a reachable Hub id. Check model_name_or_path "
            f"(details: {str(err).splitlines()[0]})"
        ) from None
    check_window_settings(data_args, tokenizer, model)
    resolve_null_threshold(data_args, model_path, tune_examples is not None)

    train_features = eval_features = None
    if training_args.do_train:
        train_features = tokenize(
            train_examples,
            prepare_train_features,
            data_args,
            tokenizer,
            "train",
            checksums,
            training_args,
        )
        logger.info(
            "Training on %d questions -> %d windows", len(train_examples), len(train_features)
        )
    if training_args.do_eval:
        eval_features = tokenize(
            eval_examples,
            prepare_eval_features,
            data_args,
            tokenizer,
            "validation",
            checksums,
            training_args,
        )
        eval_features = longest_first(eval_features)
        logger.info("Evaluating %d questions -> %d windows", len(eval_examples), len(eval_features))
    if tune_examples is not None:
        tune_features = longest_first(
            tokenize(tune_examples, prepare_eval_features, data_args, tokenizer, "tune",
                     checksums, training_args)
        )  # fmt: skip

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
            qa.samples.write_prediction_files(
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
        subset = eval_examples.select(
            range(min(data_args.eval_questions_during_training, len(eval_examples)))
        )
        asked = set(subset["id"])
        subset_features = eval_features.filter(
            lambda ids: [i in asked for i in ids],
            input_columns="example_id",
            batched=True,
            keep_in_memory=True,
        )
        training_eval = (subset_features, subset)
        logger.info("During training, scoring the first %d dev questions", len(subset))

    memory = MemoryWatch()
    interrupt = StopOnInterrupt()  # Ctrl-C: save at the end of the step, then stop
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
        callbacks=[c for c in (memory, log_file, interrupt) if c],
    )

    all_results, samples_markdown = {}, "(not evaluated)"
    if training_args.do_train:
        try:
            train_output = trainer.train(resume_from_checkpoint=resume_from)
        except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, nothing more saved
            last = last_complete_checkpoint(training_args.output_dir)
            raise SystemExit(
                f"Stopped at step {trainer.state.global_step} without saving; "
                f"{'the last checkpoint is ' + last if last else 'no checkpoint was saved'}. "
                "Run the same command again to resume."
            ) from None
        if interrupt.stopped_at is not None:
            # Ctrl-C: the callback saved at the end of a step; no finish marker is written.
            raise SystemExit(
                f"Interrupted at step {interrupt.stopped_at}; checkpoint saved in "
                f"{training_args.output_dir}/checkpoint-{interrupt.stopped_at}. "
                "Run the same command again to resume."
            )
        trainer.save_model()  # model and tokenizer, loadable by pipeline("question-answering")
        metrics = {
            **train_output.metrics,
            "train_examples": len(train_examples),
            "train_features": len(train_features),
            **memory.summary(),
        }
        metrics.update(utilisation(model.config, train_features, metrics["train_runtime"],
                                   "train", training_args, data_args.report_mfu))  # fmt: skip
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
            run_metadata(model_args, data_args, training_args, argv, checksums),
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


def card_summary(results: dict) -> str:
    scores = [f"{k.removeprefix('eval_')} {v:.2f}" for k, v in results.items()
              if k in ("eval_exact_match", "eval_exact", "eval_f1")]  # fmt: skip
    return ", ".join(scores) or "trained, not evaluated"


def card_settings(data_args, training_args, results) -> dict:
    return {
        "training questions": results.get("train_examples"),
        "train_fraction": data_args.train_fraction,
        "epochs": training_args.num_train_epochs,
        "batch size (total)": training_args.per_device_train_batch_size * training_args.world_size,
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


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except SquadDataError as err:
        raise SystemExit(f"error: {err}") from None
