"""`pipeline("question-answering", model=RUN_DIR)` under transformers 5, after `import qa.serve.pipeline`.

transformers 5 dropped that task (it lists it as removed and refuses it by name). This module
registers it again with a pipeline that answers through qa.serve.predict.QuestionAnswerer, the code
tools/predict_qa.py, the demo and `make eval`'s windows and post-processing share: the same windows,
the same answers and probabilities, and the folder's own qa_settings.json (SQuAD 2.0 or not, its
no-answer threshold, its window size).

    import qa.serve.pipeline  # noqa: F401  (registers the task)
    from transformers import pipeline
    answer = pipeline("question-answering", model="runs/squad20pct")
    answer(question="Who ...?", context="...")  # {"score", "start", "end", "answer"}

The call takes what transformers 4's pipeline took: question=/context= (strings, or lists of
equal length, or one context for several questions), a {"question", "context"} dict or a list
of them; top_k, max_seq_len, doc_stride, max_answer_len, handle_impossible_answer; and
null_score_diff_threshold and bf16 ("auto", true, false) as in tools/predict_qa.py. An answer is
{"score": probability, "start", "end" (character offsets), "answer": text}; "no answer" (a SQuAD
2.0 model abstaining) is answer "" with start = end = -1, as tools/predict_qa.py writes it.
"""

import os
from dataclasses import dataclass

import transformers.pipelines
from datasets import Dataset
from transformers import AutoModelForQuestionAnswering, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import cached_file

from qa.answers.settings import ANSWER_SETTINGS_FILE, DEFAULTS, answering_settings
from qa.serve.predict import QuestionAnswerer, broken_rule, use_bf16
from qa.user_files import lone_surrogate

TASK = "question-answering"
# transformers 4's argument names -> the recipe's settings (qa/answers/settings.py).
RENAMED = {
    "max_seq_len": "max_seq_length",
    "doc_stride": "doc_stride",
    "max_answer_len": "max_answer_length",
    "handle_impossible_answer": "version_2_with_negative",
    "null_score_diff_threshold": "null_score_diff_threshold",
}


@dataclass
class Questions:
    """Every question of one call, passed through the pipeline as one input: they are windowed
    and batched together, as tools/predict_qa.py does with a file of questions."""

    rows: list[dict]


def settings_folder(name_or_path: str) -> str | None:
    """Where the model's qa_settings.json lies: the folder, or the Hub cache's snapshot."""
    if os.path.isdir(name_or_path):
        return name_or_path
    found = cached_file(
        name_or_path,
        ANSWER_SETTINGS_FILE,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    return os.path.dirname(found) if found else None


def as_list(name: str, value) -> list:
    """question= or context= as a list: one string, or a list or tuple of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise TypeError(f"{name}= must be a string or a list of strings, not {type(value).__name__}")


def as_questions(args, question, context) -> tuple[Questions, bool]:
    """(the questions, whether one was asked) from any of the accepted call forms."""
    if args and (question is not None or context is not None):
        raise TypeError("give the questions either positionally or as question=/context=, not both")
    if len(args) > 1:
        raise TypeError("give one {'question', 'context'} dict or one list of them")
    if args:
        (given,) = args
        if isinstance(given, (str, bytes)) or not hasattr(given, "__iter__"):
            raise TypeError(
                "give a {'question', 'context'} dict or a list of them, not "
                f"{type(given).__name__}"
            )
        rows, single = ([given], True) if isinstance(given, dict) else (list(given), False)
    else:
        if question is None or context is None:
            raise TypeError("give question= and context= (or a {'question', 'context'} dict)")
        single = isinstance(question, str)
        questions = as_list("question", question)
        contexts = as_list("context", context)
        if isinstance(context, str):
            contexts *= len(questions)
        if len(contexts) != len(questions):
            raise ValueError(
                f"{len(questions)} questions but {len(contexts)} contexts: give one context, or "
                "one per question"
            )
        rows = [{"question": q, "context": c} for q, c in zip(questions, contexts)]
    for number, row in enumerate(rows, start=1):
        for key in ("question", "context"):
            check_text(number, key, row.get(key) if isinstance(row, dict) else None)
    return Questions(rows), single


def check_text(number: int, key: str, value) -> None:
    """ValueError naming the question unless `value` is text the tokenizer can take."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"question {number}: '{key}' must be a non-empty string")
    if found := lone_surrogate(value):
        raise ValueError(
            f"question {number}: '{key}' has a lone surrogate \\u{found[1]:04x} at character "
            f"{found[0] + 1}, half of a character, which cannot be encoded; pass whole characters"
        )


class SquadQuestionAnsweringPipeline(Pipeline):
    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        folder = settings_folder(self.model.name_or_path)
        # As saved with the trained folder, like tools/predict_qa.py; the recipe's defaults otherwise.
        self.saved = answering_settings(folder) if folder else dict(DEFAULTS)

    def _sanitize_parameters(self, top_k=None, bf16=None, **kwargs):
        unknown = set(kwargs) - set(RENAMED)
        if unknown:
            raise TypeError(
                f"unknown argument(s) {sorted(unknown)}; this pipeline takes top_k, bf16, "
                f"{', '.join(RENAMED)}"
            )
        given = {"top_k": top_k, "bf16": bf16, **kwargs}
        for name, value in given.items():
            if value is not None and (rule := broken_rule(RENAMED.get(name, name), value)):
                raise ValueError(f"{name} must be {rule}, not {value!r}")
        forward = {RENAMED[k]: v for k, v in kwargs.items() if v is not None}
        if bf16 is not None:
            forward["bf16"] = bf16
        postprocess = {"top_k": top_k} if top_k is not None else {}
        return {}, forward, postprocess

    def __call__(self, *args, question=None, context=None, **kwargs):
        """One answer (a dict) for one question; a list of answers for a list of questions."""
        questions, single = as_questions(args, question, context)
        if not questions.rows:
            return []  # an empty list of questions: nothing to answer, no model pass
        answers = super().__call__(questions, **kwargs)
        return answers[0] if single else answers

    def preprocess(self, questions: Questions):
        rows = questions.rows
        return {
            "examples": Dataset.from_dict(
                {
                    "id": [str(i) for i in range(len(rows))],
                    "question": [r["question"] for r in rows],
                    "context": [r["context"] for r in rows],
                }
            )
        }

    def _forward(self, inputs, bf16="auto", **given):
        settings = {**self.saved, **given}
        answerer = QuestionAnswerer(
            None,
            model=self.model,
            tokenizer=self.tokenizer,
            bf16=use_bf16(str(bf16).lower()),
            **settings,
        )
        examples = inputs["examples"]
        return {"answers": answerer(examples), "ids": examples["id"]}

    def postprocess(self, outputs, top_k=1):
        results = []
        for qid in outputs["ids"]:
            answer = outputs["answers"][qid]
            if top_k == 1:
                results.append(
                    {
                        "score": answer.probability,
                        "start": answer.start,
                        "end": answer.end,
                        "answer": answer.text,
                    }
                )
            else:
                results.append(
                    [
                        {"score": c.probability, "start": c.start, "end": c.end, "answer": c.text}
                        for c in answer.nbest[:top_k]
                    ]
                )
        return results


def register() -> None:
    # pipeline() refuses a name listed as removed before it looks in the registry.
    transformers.pipelines.REMOVED_TASKS.pop(TASK, None)
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=SquadQuestionAnsweringPipeline,
        pt_model=AutoModelForQuestionAnswering,
        type="text",
    )


register()
