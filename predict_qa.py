"""Ask a trained folder questions about new text, with the windows and post-processing of evaluation.

    python predict_qa.py runs/squad20pct --context "..." --question "..." [--question ...]
    python predict_qa.py runs/squad20pct --file questions.jsonl [--output answers.json] [--nbest 3]

`--file` takes SQuAD JSON or JSON Lines (answers optional there: they are only used to score).
Long contexts are split into overlapping windows exactly as in training and evaluation.
"""

import argparse
import sys

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding

from qa.data import SquadDataError, load_squad_file
from qa.features import QuestionTooLong, prepare_eval_features
from qa.io import write_json_atomic
from qa.settings import answering_settings
from utils_qa import postprocess_qa_predictions

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


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

    def __init__(self, model_dir, *, max_seq_length=384, doc_stride=128, batch_size=64,
                 bf16=False, version_2_with_negative=False, n_best_size=20, max_answer_length=30,
                 null_score_diff_threshold=0.0):  # fmt: skip
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
        if torch.cuda.is_available():
            self.model.to("cuda")
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a trained output folder (model + tokenizer)")
    parser.add_argument("--context", help="the text to answer from")
    parser.add_argument("--question", action="append", default=[], help="repeatable")
    parser.add_argument("--file", help="SQuAD JSON or JSON Lines of questions")
    parser.add_argument("--output", help="write {id: answer with offsets and n-best} here")
    parser.add_argument("--nbest", type=int, default=0, help="also print the N next best answers")
    # Unset: as saved with the trained folder (qa_settings.json), so a SQuAD 2.0 model abstains
    # at the threshold tuned for it without it being typed again.
    parser.add_argument("--version_2_with_negative", action=argparse.BooleanOptionalAction)
    parser.add_argument("--null_score_diff_threshold", type=float)
    parser.add_argument("--max_seq_length", type=int)
    parser.add_argument("--doc_stride", type=int)
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 autocast (CPU with AVX512-BF16, GPU)"
    )
    args = parser.parse_args(argv)

    if args.file:
        try:
            examples = load_squad_file(args.file, allow_unanswerable=True, answers_optional=True)
        except SquadDataError as err:
            raise SystemExit(f"error: {err}") from None
    elif args.context and args.question:
        for number, question in enumerate(args.question, start=1):
            if not question.strip():
                raise SystemExit(f"error: --question {number} is empty; type a question.")
        examples = Dataset.from_dict(
            {
                "id": [f"q{i + 1}" for i in range(len(args.question))],
                "question": args.question,
                "context": [args.context] * len(args.question),
            }
        )
    else:
        parser.error("give --context with one or more --question, or --file")

    settings = answering_settings(
        args.model, version_2_with_negative=args.version_2_with_negative,
        null_score_diff_threshold=args.null_score_diff_threshold,
        max_seq_length=args.max_seq_length, doc_stride=args.doc_stride,
    )  # fmt: skip
    try:
        answers = answer_questions(args.model, examples, bf16=args.bf16, **settings)
    except QuestionTooLong as err:
        raise SystemExit(f"error: {args.file or '--question'}: {err}") from None
    for qid, question in zip(examples["id"], examples["question"]):
        answer = answers[qid]
        shown = f'"{answer.text}"' if answer.text else "(no answer)"
        print(f"{qid}: {question.strip()}\n  -> {shown}  p={answer.probability:.3f}  "
              f"chars {answer.start}-{answer.end}")  # fmt: skip
        for rank, candidate in enumerate(answer.nbest[1 : 1 + args.nbest], start=2):
            print(f'     {rank}. "{candidate.text}"  p={candidate.probability:.3f}')
    if args.output:
        write_json_atomic(
            args.output,
            {
                qid: {
                    "text": a.text, "probability": a.probability, "start": a.start, "end": a.end,
                    "no_answer_probability": a.no_answer_probability,
                    "nbest": [{"text": c.text, "probability": c.probability, "start": c.start,
                               "end": c.end} for c in a.nbest],
                }
                for qid, a in answers.items()
            },
        )  # fmt: skip
    return answers


if __name__ == "__main__":
    main(sys.argv[1:])
