"""Sample rendering: markers land on the right characters and nest."""

import json

from qa.scoring.samples import mark_excerpt

CONTEXT = "The tentacles are fringed with tentilla, little tentacles."


def span(text):
    start = CONTEXT.index(text)
    return start, start + len(text)


def test_gold_and_prediction_marks():
    gold, pred = span("tentilla"), span("fringed")
    marked = mark_excerpt(CONTEXT, [(*gold, "[", "]"), (*pred, "**", "**")])
    assert marked == "The tentacles are **fringed** with [tentilla], little tentacles."


def test_equal_spans_nest():
    both = span("tentilla")
    marked = mark_excerpt(CONTEXT, [(*both, "[", "]"), (*both, "**", "**")])
    assert "[**tentilla**]" in marked


def test_span_inside_another_nests():
    marked = mark_excerpt(
        CONTEXT, [(*span("with tentilla"), "[", "]"), (*span("tentilla"), "**", "**")]
    )
    assert "[with **tentilla**]" in marked


def test_no_answer_prediction_leaves_the_context_unmarked():
    assert mark_excerpt(CONTEXT, [(-1, -1, "**", "**")]) == CONTEXT


def test_runs_with_other_training_seeds_show_the_same_questions(tmp_path):
    """The draw follows samples_seed only (show_samples is not given the training seed): a
    second seed's samples sit beside the first's question for question."""
    from types import SimpleNamespace

    from datasets import Dataset

    from qa.answers.postprocess import QuestionPrediction
    from qa.scoring.samples import show_samples

    rows = [
        {
            "id": f"q{i}",
            "title": "T",
            "question": f"Question {i}?",
            "context": CONTEXT,
            "answers": {
                "text": ["tentilla"] if i % 2 else [],
                "answer_start": [31] if i % 2 else [],
            },
        }
        for i in range(40)
    ]
    examples = Dataset.from_list(rows)
    answers = {r["id"]: QuestionPrediction("", 0.9, -1, -1) for r in rows}

    def shown(samples_seed: int = 42) -> list[str]:
        run_args = SimpleNamespace(num_samples=5, samples_seed=samples_seed)
        show_samples(examples, answers, True, run_args, str(tmp_path))
        return [s["id"] for s in json.loads((tmp_path / "samples.json").read_text())]

    assert shown() == shown()
    assert shown(samples_seed=7) != shown()
