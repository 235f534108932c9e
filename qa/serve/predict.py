"""Answers from a trained folder with the windows and post-processing of evaluation: the model
side of tools/predict_qa.py, the demo and the inference bench."""

import math
import numbers

import numpy as np
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from qa.answers.postprocess import postprocess_qa_predictions
from qa.answers.settings import DEFAULTS
from qa.data.windows import prepare_eval_features, question_token_limit
from qa.machine.hardware import bf16_available
from qa.ranges import RANGES
from qa.serve.export import MODEL_INPUTS, answering_model
from qa.serve.model_files import damage_named


def add_bf16_argument(parser) -> None:
    """--bf16 auto|true|false for the answering tools; bare --bf16 means true."""
    parser.add_argument(
        "--bf16",
        nargs="?",
        const="true",
        default="auto",
        choices=["auto", "true", "false"],
        help="bf16 autocast. auto (default): where the CPU has AVX512-BF16 or AMX, or on a GPU; "
        "on a Zen 4 CPU it answered 1.69x as fast as fp32 with the same F1 (docs/speed.md)",
    )


def use_bf16(choice: str) -> bool:
    return bf16_available() if choice == "auto" else choice == "true"


def window_logits(model, tokenizer, features, batch_size: int, bf16: bool):
    """Start/end logits of every window, (windows, longest window), in feature order.

    Windows go through the model longest first, so that each batch holds windows of similar
    length and pads little; the logits are put back in feature order."""
    collate = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
    lengths = np.asarray(features["length"])
    width_all = -(-int(lengths.max()) // 8) * 8  # the collator pads to a multiple of 8
    starts = np.full((len(features), width_all), -100.0, dtype=np.float32)
    ends = np.full_like(starts, -100.0)
    columns = [c for c in MODEL_INPUTS if c in features.column_names]
    rows = features.select_columns(columns)
    order = np.argsort(-lengths, kind="stable")
    for lo in range(0, len(features), batch_size):
        chosen = order[lo : lo + batch_size]
        batch = collate([rows[int(i)] for i in chosen])
        with torch.no_grad(), torch.autocast(model.device.type, torch.bfloat16, enabled=bf16):
            out = model(**{k: v.to(model.device) for k, v in batch.items()})
        width = out.start_logits.shape[1]
        starts[chosen, :width] = out.start_logits.float().cpu().numpy()
        ends[chosen, :width] = out.end_logits.float().cpu().numpy()
    return starts, ends


def broken_rule(setting: str, value) -> str | None:
    """What a call setting (the recipe's name, top_k or bf16) must be, where `value` is not that."""
    if setting == "bf16":
        return None if str(value).lower() in ("auto", "true", "false") else "'auto', True or False"
    if setting == "version_2_with_negative":
        return None if isinstance(value, bool) else "True or False"
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if setting == "null_score_diff_threshold":
        return None if number and math.isfinite(value) else "a finite number"
    low = RANGES.get(setting, (1, None))[0]  # top_k: 1 or more
    return (
        None
        if isinstance(value, numbers.Integral) and number and value >= low
        else f"a whole number >= {low}"
    )


class SettingError(ValueError):
    """An answering setting (a flag, a call's argument or qa_settings.json) that cannot be used."""


def check_settings(tokenizer, model, settings: dict) -> None:
    """SettingError for a setting of the wrong type or range, or a window the model cannot take
    or that leaves no room for a question (the tokenizer would abort)."""
    for name, value in settings.items():
        if rule := broken_rule(name, value):
            raise SettingError(f"{name} must be {rule}, not {value!r}.")
    length, stride = settings["max_seq_length"], settings["doc_stride"]
    limit = min(tokenizer.model_max_length, model.config.max_position_embeddings)
    if length > limit:
        raise SettingError(f"max_seq_length {length} exceeds the model's maximum {limit}.")
    if question_token_limit(tokenizer, length, stride) < 1:
        most = length - tokenizer.num_special_tokens_to_add(pair=True) - 2
        raise SettingError(
            f"doc_stride {stride} leaves no room for a question in windows of {length} tokens; "
            + (f"make it at most {most}." if most >= 0 else "make max_seq_length larger.")
        )


class QuestionAnswerer:
    """A trained folder loaded once, answering batches of questions (used by the CLI and demo)."""

    def __init__(
        self,
        model_dir,
        *,
        max_seq_length=DEFAULTS["max_seq_length"],
        doc_stride=DEFAULTS["doc_stride"],
        batch_size=64,
        bf16=False,
        version_2_with_negative=False,
        n_best_size=DEFAULTS["n_best_size"],
        max_answer_length=DEFAULTS["max_answer_length"],
        null_score_diff_threshold=DEFAULTS["null_score_diff_threshold"],
        model=None,
        tokenizer=None,
        backend="torch",
    ):
        # model/tokenizer: already loaded and placed (the question-answering pipeline's own).
        # backend: torch, or an ONNX export's (qa/serve/export.py), whose folder has the tokenizer.
        if model is None:
            with damage_named(model_dir):
                model_dir, model = answering_model(model_dir, backend)
                tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer, self.model = tokenizer, model.eval()
        self.window = {"max_seq_length": max_seq_length, "doc_stride": doc_stride}
        self.batch_size, self.bf16 = batch_size, bf16
        self.post = {
            "version_2_with_negative": version_2_with_negative,
            "n_best_size": n_best_size,
            "max_answer_length": max_answer_length,
            "null_score_diff_threshold": null_score_diff_threshold,
        }
        check_settings(tokenizer, model, {**self.window, **self.post})

    def __call__(self, examples):
        """{question id: QuestionPrediction} for a Dataset with id, question, context columns."""
        features = examples.map(
            prepare_eval_features,
            batched=True,
            remove_columns=examples.column_names,
            fn_kwargs={"tokenizer": self.tokenizer, **self.window},
        )
        starts, ends = window_logits(
            self.model, self.tokenizer, features, self.batch_size, self.bf16
        )
        return postprocess_qa_predictions(examples, features, starts, ends, **self.post)


def answer_questions(model_dir, examples, **settings):
    """{question id: QuestionPrediction}; settings as QuestionAnswerer's."""
    return QuestionAnswerer(model_dir, **settings)(examples)
