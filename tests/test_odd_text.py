"""Text that tokenises to nothing, cannot be encoded, or is nested too deep: predict (--context
and --file), the pipeline and the data loader answer "no answer" or say in one line what is
wrong, never a traceback.

A passage of no token (only zero-width or control characters, lone combining marks) has no span
to answer with, so its answer is "no answer" (text "", offsets -1, probability 1), whether the
model was trained on SQuAD 2.0 or not.
"""

import json

import pytest
import torch
from transformers import pipeline

import predict_qa
import qa.serve.pipeline  # noqa: F401  (registers the task)
from qa.data.load import SquadDataError, load_squad_file
from qa.user_files import read_json_file
from test_inputs import CONTEXT, bundled_model  # noqa: F401  (a fixture)

# Each tokenises to no token at all with BERT's uncased WordPiece.
NO_TOKEN = {
    "zero-width": "\u200b\u200c\u200d\u2060",
    "control": "\x01\x02\x7f",
    "combining-marks": "\u0301\u0308",
    "byte-order-marks": "\ufeff\ufeff",
}
NO_ANSWER = {"text": "", "start": -1, "end": -1, "probability": 1.0}


@pytest.mark.parametrize("passage", NO_TOKEN.values(), ids=NO_TOKEN.keys())
@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_a_passage_of_no_token_gets_no_answer_from_predict(bundled_model, tmp_path, passage, v2):  # noqa: F811
    flags = [
        "--bf16",
        "false",
        "--version_2_with_negative" if v2 else "--no-version_2_with_negative",
    ]
    out = tmp_path / "answers.json"
    predict_qa.main([bundled_model, "--context", passage, "--question", "Which river?",
                     "--output", str(out), *flags])  # fmt: skip
    answer = json.loads(out.read_text())["q1"]
    assert {k: answer[k] for k in NO_ANSWER} == NO_ANSWER
    # In a file, beside a passage with tokens: each question gets its own answer.
    path = tmp_path / "questions.jsonl"
    rows = [
        {"id": "empty", "question": "Which river?", "context": passage},
        {"id": "plain", "question": "Which river?", "context": CONTEXT},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # The bundled model's span head is drawn at load: the same seed draws the same head, so the
    # plain question can be asked alone too (on SQuAD 2.0 rules that head may well abstain).
    torch.manual_seed(0)
    predict_qa.main([bundled_model, "--file", str(path), "--output", str(out), *flags])
    answers = json.loads(out.read_text())
    assert {k: answers["empty"][k] for k in NO_ANSWER} == NO_ANSWER
    torch.manual_seed(0)
    predict_qa.main([bundled_model, "--context", CONTEXT, "--question", "Which river?",
                     "--output", str(out), *flags])  # fmt: skip
    alone = json.loads(out.read_text())["q1"]
    assert {k: answers["plain"][k] for k in ("text", "start", "end")} == {
        k: alone[k] for k in ("text", "start", "end")
    }
    assert answers["plain"]["probability"] == pytest.approx(alone["probability"], abs=1e-4)
    if not v2:  # no abstaining: a passage with tokens always has a span to answer with
        assert answers["plain"]["text"] and answers["plain"]["start"] >= 0


@pytest.fixture(scope="module")
def answer(bundled_model):  # noqa: F811
    return pipeline("question-answering", model=bundled_model, device="cpu")


def test_a_passage_of_no_token_gets_no_answer_from_the_pipeline(answer):
    for passage in NO_TOKEN.values():
        got = answer(question="Which river?", context=passage, bf16=False)
        assert got == {"score": 1.0, "start": -1, "end": -1, "answer": ""}
    both = answer(question=["Which river?"] * 2, context=[NO_TOKEN["control"], CONTEXT], bf16=False)
    assert both[0]["answer"] == "" and both[1]["answer"]


SURROGATES = {
    "context": {"id": "q1", "question": "Which river?", "context": "The \ud800 river Wend."},
    "question": {"id": "q1", "question": "Which \udfff river?", "context": CONTEXT},
    "id": {"id": "q\ud83d", "question": "Which river?", "context": CONTEXT},
}


@pytest.mark.parametrize("field", SURROGATES, ids=SURROGATES.keys())
def test_a_lone_surrogate_in_a_file_is_named_with_its_record(tmp_path, bundled_model, field):  # noqa: F811
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps(SURROGATES[field]) + "\n")  # json.dumps escapes it as \ud800
    with pytest.raises(SquadDataError) as excinfo:
        load_squad_file(str(path), allow_unanswerable=True, answers_optional=True)
    message = str(excinfo.value)
    assert (
        message.startswith(f"{path}: question q") and f"its {field} has a lone surrogate" in message
    )
    assert "write the whole character" in message
    with pytest.raises(SystemExit, match=f"^error: {path}: question q.*lone surrogate"):
        predict_qa.main([bundled_model, "--file", str(path)])


def test_bytes_that_are_not_utf8_on_the_command_line_are_refused(bundled_model):  # noqa: F811
    # How Python hands over an argument holding the byte 0xff (surrogateescape).
    not_utf8 = b"caf\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(
        SystemExit, match=r"^error: --context: not UTF-8 text \(byte 0xff at character 4\)"
    ):
        predict_qa.main([bundled_model, "--context", not_utf8, "--question", "Which river?"])
    with pytest.raises(SystemExit, match=r"^error: --question 2: not UTF-8 text \(byte 0xff"):
        predict_qa.main([bundled_model, "--context", CONTEXT, "--question", "Which river?",
                         "--question", not_utf8])  # fmt: skip


DEEP = {
    "nested-document": '{"data": ' + "[" * 5000 + "]" * 5000 + "}",
    "bare-brackets": "[" * 100_000,
    "json-lines": json.dumps({"id": "q1", "question": "Which river?", "context": CONTEXT})
    + "\n"
    + "[" * 5000
    + "]" * 5000,
}


@pytest.mark.parametrize("text", DEEP.values(), ids=DEEP.keys())
def test_json_nested_too_deep_is_one_line_naming_the_file(tmp_path, bundled_model, text):  # noqa: F811
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(SquadDataError) as excinfo:
        load_squad_file(str(path), answers_optional=True)
    message = str(excinfo.value)
    assert message.startswith(f"{path}") and "levels deep, more than can be read" in message
    assert "\n" not in message
    with pytest.raises(SystemExit, match=f"^error: {path}.*levels deep"):
        predict_qa.main([bundled_model, "--file", str(path)])
    if "\n" not in text:  # one document: as settings, manifests and compare_qa's files are read
        with pytest.raises(ValueError, match=f"^{path}, line 1: not valid JSON \\(nested"):
            read_json_file(str(path))
