"""Ask a trained folder questions about new text, with the windows and post-processing of evaluation.

    python tools/predict_qa.py runs/squad20pct --context "..." --question "..." [--question ...]
    python tools/predict_qa.py runs/squad20pct --file questions.jsonl [--output answers.json] [--nbest 3]

`--file` takes SQuAD JSON or JSON Lines, or a CSV or Parquet table whose columns the
--question_column, --context_column, --answer_column and --answer_start_column flags name (as
run_qa's settings; docs/using.md, "Your own data"). Answers are optional: they are only used to
score.
Long contexts are split into overlapping windows exactly as in training and evaluation.
"""

import argparse
import sys
from dataclasses import asdict

from datasets import Dataset

from qa.answers.settings import answering_settings
from qa.atomic import write_json_atomic
from qa.data.load import SquadDataError, load_squad_file
from qa.data.tables import Columns
from qa.data.windows import QuestionTooLong
from qa.serve.export import add_backend_argument
from qa.serve.passages import passage_problem
from qa.serve.predict import SettingError, add_bf16_argument, answer_questions, use_bf16
from qa.user_files import lone_surrogate


def not_utf8(argument: str) -> str | None:
    """Why a command-line text cannot be answered: Python keeps a byte that is not UTF-8 as a
    lone surrogate, which the tokenizer cannot take. None if it is text."""
    if (found := lone_surrogate(argument)) is None:
        return None
    index, code = found
    byte = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"
    return (
        f"not UTF-8 text ({byte} at character {index + 1}); set the terminal to UTF-8, or put "
        "the text in a --file."
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a trained output folder (model + tokenizer)")
    parser.add_argument("--context", help="the text to answer from")
    parser.add_argument("--question", action="append", default=[], help="repeatable")
    parser.add_argument("--file", help="SQuAD JSON or JSON Lines, CSV or Parquet of questions")
    for name, default in asdict(Columns()).items():
        parser.add_argument(f"--{name}_column", default=default, help="in a CSV or Parquet file")
    parser.add_argument("--output", help="write {id: answer with offsets and n-best} here")
    parser.add_argument("--nbest", type=int, default=0, help="also print the N next best answers")
    # Unset: as saved with the trained folder (qa_settings.json), so a SQuAD 2.0 model abstains
    # at the threshold tuned for it without it being typed again.
    parser.add_argument("--version_2_with_negative", action=argparse.BooleanOptionalAction)
    parser.add_argument("--null_score_diff_threshold", type=float)
    parser.add_argument("--max_seq_length", type=int)
    parser.add_argument("--doc_stride", type=int)
    add_bf16_argument(parser)
    add_backend_argument(parser)
    args = parser.parse_args(argv)

    if args.file:
        try:
            examples = load_squad_file(
                args.file, True, answers_optional=True, columns=Columns.of(args)
            )
        except SquadDataError as err:
            raise SystemExit(f"error: {err}") from None
        for qid, context in zip(examples["id"], examples["context"]):
            if problem := passage_problem(context):
                raise SystemExit(f"error: {args.file}: question {qid}: {problem}")
    elif args.context is not None and args.question:
        if problem := passage_problem(args.context) or not_utf8(args.context):
            raise SystemExit(f"error: --context: {problem}")
        for number, question in enumerate(args.question, start=1):
            if not question.strip():
                raise SystemExit(f"error: --question {number} is empty; type a question.")
            if problem := not_utf8(question):
                raise SystemExit(f"error: --question {number}: {problem}")
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
        args.model,
        version_2_with_negative=args.version_2_with_negative,
        null_score_diff_threshold=args.null_score_diff_threshold,
        max_seq_length=args.max_seq_length,
        doc_stride=args.doc_stride,
    )
    try:
        answers = answer_questions(
            args.model, examples, bf16=use_bf16(args.bf16), backend=args.backend, **settings
        )
    except QuestionTooLong as err:
        raise SystemExit(f"error: {args.file or '--question'}: {err}") from None
    except SettingError as err:
        raise SystemExit(f"error: {err} Fix the flag, or the folder's qa_settings.json.") from None
    for qid, question in zip(examples["id"], examples["question"]):
        answer = answers[qid]
        shown = f'"{answer.text}"' if answer.text else "(no answer)"
        print(
            f"{qid}: {question.strip()}\n  -> {shown}  p={answer.probability:.3f}  "
            f"chars {answer.start}-{answer.end}"
        )
        for rank, candidate in enumerate(answer.nbest[1 : 1 + args.nbest], start=2):
            print(f'     {rank}. "{candidate.text}"  p={candidate.probability:.3f}')
    if args.output:
        write_json_atomic(
            args.output,
            {
                qid: {
                    "text": a.text,
                    "probability": a.probability,
                    "start": a.start,
                    "end": a.end,
                    "no_answer_probability": a.no_answer_probability,
                    "nbest": [
                        {
                            "text": c.text,
                            "probability": c.probability,
                            "start": c.start,
                            "end": c.end,
                        }
                        for c in a.nbest
                    ],
                }
                for qid, a in answers.items()
            },
        )
    return answers


if __name__ == "__main__":
    main(sys.argv[1:])
