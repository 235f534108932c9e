"""Answers from a trained folder with the windows and post-processing of evaluation: the model
side of tools/predict_qa.py, the demo and the inference bench."""

import numpy as np
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from qa.answer_settings import DEFAULTS
from qa.export import MODEL_INPUTS, answering_model
from qa.features import prepare_eval_features
from qa.hardware import bf16_available
from qa.postprocess import postprocess_qa_predictions


def add_bf16_argument(parser) -> None:
    """--bf16 auto|true|false for the answering tools; bare --bf16 means true."""
    parser.add_argument(
        "--bf16", nargs="?", const="true", default="auto", choices=["auto", "true", "false"],
        help="bf16 autocast. auto (default): where the CPU has AVX512-BF16 or AMX, or on a GPU; "
        "on a Zen 4 CPU it answered 1.69x as fast as fp32 with the same F1 (docs/speed.md)",
    )  # fmt: skip


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


class QuestionAnswerer:
    """A trained folder loaded once, answering batches of questions (used by the CLI and demo)."""

    def __init__(self, model_dir, *, max_seq_length=DEFAULTS["max_seq_length"],
                 doc_stride=DEFAULTS["doc_stride"], batch_size=64, bf16=False,
                 version_2_with_negative=False, n_best_size=DEFAULTS["n_best_size"],
                 max_answer_length=DEFAULTS["max_answer_length"],
                 null_score_diff_threshold=DEFAULTS["null_score_diff_threshold"], model=None,
                 tokenizer=None, backend="torch"):  # fmt: skip
        # model/tokenizer: already loaded and placed (the question-answering pipeline's own).
        # backend: torch, or an ONNX export's (qa/export.py), whose folder has the tokenizer.
        if model is None:
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
