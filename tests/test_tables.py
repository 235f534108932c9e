"""Users' own data in CSV and Parquet files and Hub datasets with other column names
(qa/data/tables.py): read into SQuAD's schema, and every bad row one line naming file, row and fix."""

import json
from types import SimpleNamespace

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import predict_qa
from helpers.recipe_runner import needs_squad, refusal
from qa.data import windows
from qa.data.load import SquadDataError, load_local_file, load_raw_datasets, load_squad_file
from qa.data.tables import Columns
from qa.run import resume
from qa.run.config import parse_arguments

CONTEXT = "Ada Lovelace wrote the first program in 1843."
HEADER = "question,context,answer_text,answer_start\n"
GOOD_ROWS = [
    {
        "question": "Who wrote the first program?",
        "context": CONTEXT,
        "answer_text": "Ada Lovelace",
        "answer_start": 0,
    },
    {"question": "When?", "context": CONTEXT, "answer_text": "1843", "answer_start": 40},
]
TEXT_AND_START = Columns(answer="answer_text")
EXPECTED = [
    {
        "question": "Who wrote the first program?",
        "context": CONTEXT,
        "answers": {"text": ["Ada Lovelace"], "answer_start": [0]},
    },
    {"question": "When?", "context": CONTEXT, "answers": {"text": ["1843"], "answer_start": [40]}},
]


def write_csv(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def good_csv(tmp_path) -> str:
    lines = [
        f'"{r["question"]}","{r["context"]}",{r["answer_text"]},{r["answer_start"]}\n'
        for r in GOOD_ROWS
    ]
    return write_csv(tmp_path / "own.csv", HEADER + "".join(lines))


def write_parquet(path, rows: list[dict]) -> str:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def content(dataset) -> list[dict]:
    return [{k: row[k] for k in ("question", "context", "answers")} for row in dataset]


# --- what reads ---------------------------------------------------------------------------


def test_csv_with_answer_text_and_start(tmp_path):
    examples = load_squad_file(good_csv(tmp_path), columns=TEXT_AND_START)
    assert content(examples) == EXPECTED
    assert examples["id"] == ["own-1", "own-2"]  # no id column: file name and row
    assert examples.features == load_squad_file(good_csv(tmp_path), columns=TEXT_AND_START).features


def test_csv_with_squad_style_answers_in_json(tmp_path):
    cells = [json.dumps(row["answers"]).replace('"', '""') for row in EXPECTED]
    text = "id,question,context,answers\n" + "".join(
        f'q{i},"{row["question"]}","{row["context"]}","{cell}"\n'
        for i, (row, cell) in enumerate(zip(EXPECTED, cells, strict=True))
    )
    examples = load_squad_file(write_csv(tmp_path / "squad.csv", text))
    assert content(examples) == EXPECTED and examples["id"] == ["q0", "q1"]


def test_parquet_with_renamed_columns_and_struct_answers(tmp_path):
    rows = [
        {"id": f"p{i}", "query": r["question"], "passage": r["context"], "gold": r["answers"]}
        for i, r in enumerate(EXPECTED)
    ]
    columns = Columns(question="query", context="passage", answer="gold")
    examples = load_squad_file(write_parquet(tmp_path / "own.parquet", rows), columns=columns)
    assert content(examples) == EXPECTED and examples["id"] == ["p0", "p1"]


def test_parquet_text_and_start_as_pandas_writes_it(tmp_path):
    # pandas stores an integer column with a gap as floats: 40.0 is the whole number 40.
    rows = [{**r, "answer_start": float(r["answer_start"])} for r in GOOD_ROWS]
    rows.append({**GOOD_ROWS[0], "question": "Who not?", "answer_text": None, "answer_start": None})
    path = write_parquet(tmp_path / "floats.parquet", rows)
    examples = load_squad_file(path, allow_unanswerable=True, columns=TEXT_AND_START)
    assert content(examples)[:2] == EXPECTED
    assert examples[2]["answers"] == {"text": [], "answer_start": []}


def test_csv_cells_stay_text_and_a_bom_is_dropped(tmp_path):
    text = "\ufeffid,question,context,answer_text,answer_start\n007,What year?,1990,1990,0\n"
    examples = load_squad_file(write_csv(tmp_path / "bom.csv", text), columns=TEXT_AND_START)
    assert examples[0]["id"] == "007" and examples[0]["context"] == "1990"


def test_empty_answer_text_is_no_answer_and_needs_version_2(tmp_path):
    path = write_csv(tmp_path / "v2.csv", HEADER + "Who?,Nobody is named here.,,\n")
    examples = load_squad_file(path, allow_unanswerable=True, columns=TEXT_AND_START)
    assert examples[0]["answers"] == {"text": [], "answer_start": []}
    with pytest.raises(SquadDataError, match="version_2_with_negative"):
        load_squad_file(path, columns=TEXT_AND_START)


def test_the_columns_are_part_of_the_recorded_data(tmp_path):
    """The same file read through other columns is other data: the features cache and the run's
    record must tell them apart."""
    args = SimpleNamespace(
        version_2_with_negative=False,
        question_column="question",
        context_column="context",
        answer_column="answer_text",
        answer_start_column="answer_start",
    )
    checksums = {}
    load_local_file(good_csv(tmp_path), args, checksums, "train")
    assert checksums["train"]["columns"]["answer"] == "answer_text"


# --- bad rows: one line, naming the file, the row and the fix --------------------------------

BAD_CSV = {
    "missing-column": (
        "question,passage,answer_text,answer_start\nWho?,Ada,Ada,0\n",
        ["no column 'context'", "its columns: question, passage", "set context_column"],
    ),
    "start-not-a-number": (
        HEADER + "Who?,Ada wrote,Ada,first\n",
        ["row 1 (line 2)", 'answer_start "first"', "whole number"],
    ),
    "start-negative": (HEADER + "Who?,Ada wrote,Ada,-2\n", ["row 1 (line 2)", "whole number"]),
    "answer-not-at-start": (
        HEADER + "Who?,Yes Ada wrote,Ada,4\nWho?,Yes Ada wrote,Ada,1\n",
        ["row 2 (line 3)", "'Ada' is not at answer_start 1", "first occurs at 4", "fix"],
    ),
    "empty-question": (
        HEADER + "Who?,Ada wrote,Ada,0\n  ,Ada wrote,Ada,0\n",
        ["row 2 (line 3)", "empty or non-text 'question'", "fix or remove"],
    ),
    "row-of-wrong-width": (
        HEADER + "Who?,Ada wrote,Ada,0\nWho?,Ada, wrote,Ada,0\n",
        ["row 2 (line 3)", "5 values where the header names 4", "double quotes"],
    ),
    "answer-text-without-start-column": (
        "question,context,answer_text\nWho?,Ada wrote,Ada\n",
        ["row 1 (line 2)", "no 'answer_start' column", "answer_start_column"],
    ),
    "header-only": (HEADER, ["holds no questions"]),
}


@pytest.mark.parametrize("case", BAD_CSV, ids=list(BAD_CSV))
def test_bad_csv_rows_are_one_line_naming_file_row_and_fix(tmp_path, case):
    text, needles = BAD_CSV[case]
    path = write_csv(tmp_path / f"{case}.csv", text)
    with pytest.raises(SquadDataError) as caught:
        load_squad_file(path, columns=TEXT_AND_START)
    message = str(caught.value)
    assert message.startswith(path) and "\n" not in message
    for needle in needles:
        assert needle in message


def test_bad_parquet_rows_name_the_column_the_user_gave(tmp_path):
    rows = [{"query": "Who?", "passage": None, "answers": EXPECTED[0]["answers"]}]
    path = write_parquet(tmp_path / "nulls.parquet", rows)
    with pytest.raises(
        SquadDataError,
        match=r"nulls.parquet: row 1 has an empty or non-text "
        "'passage'; fix or remove",
    ):
        load_squad_file(path, columns=Columns(question="query", context="passage"))


@pytest.mark.parametrize(
    "name, raw, needle",
    [
        ("latin1.csv", HEADER.encode() + b"Who?,Caf\xe9,Caf,0\n", "line 2: not UTF-8"),
        ("broken.parquet", b"PAR1 not really", "not a Parquet file that can be read"),
        ("empty.csv", b"", "the file is empty"),
    ],
)
def test_unreadable_tables_are_one_line(tmp_path, name, raw, needle):
    (tmp_path / name).write_bytes(raw)
    with pytest.raises(SquadDataError) as caught:
        load_squad_file(str(tmp_path / name), columns=TEXT_AND_START)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_table_says_how_to_point_at_one(tmp_path):
    with pytest.raises(SquadDataError, match="nope.parquet: no such file. Run `make data`"):
        load_squad_file(str(tmp_path / "nope.parquet"))


# --- the Hub: no network here, so load_dataset hands back local rows --------------------------


def hub_arguments(**columns):
    data = SimpleNamespace(
        dataset_name="someone/own-qa",
        dataset_config_name=None,
        train_file=None,
        validation_file=None,
        threshold_file=None,
        extra_train_files=[],
        extra_train_unanswerable_files=[],
        train_fraction=1.0,
        train_fraction_seed=None,
        max_train_samples=None,
        max_eval_samples=None,
        extra_train_repeats=1,
        version_2_with_negative=False,
        **{f"{k}_column": v for k, v in {**vars(Columns()), **columns}.items()},
    )
    training = SimpleNamespace(do_train=True, do_eval=True, seed=42)
    return data, SimpleNamespace(cache_dir=None), training


def test_hub_dataset_with_other_column_names(monkeypatch):
    rows = [
        {
            "q": r["question"],
            "passage": r["context"],
            "answer_text": r["answer_text"],
            "answer_start": r["answer_start"],
        }
        for r in GOOD_ROWS
    ]
    hub = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "validation": datasets.Dataset.from_list(rows)}
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: hub)
    arguments = hub_arguments(question="q", context="passage", answer="answer_text")
    splits, _ = load_raw_datasets(*arguments)
    assert content(splits["train"]) == EXPECTED == content(splits["validation"])


def test_hub_dataset_in_squads_shape_is_used_as_it_is(monkeypatch):
    squad = datasets.Dataset.from_list(
        [{"id": "h1", "title": "", **EXPECTED[0]}, {"id": "h2", "title": "", **EXPECTED[1]}]
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: {"train": squad})
    splits, _ = load_raw_datasets(*hub_arguments())
    assert splits["train"] is squad


def test_hub_rows_are_checked_like_a_file(monkeypatch):
    bad = [{**GOOD_ROWS[0], "answer_start": 3}]
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: {"train": datasets.Dataset.from_list(bad)}
    )
    with pytest.raises(SquadDataError, match=r"someone/own-qa \(train split\): row 1: the answer"):
        load_raw_datasets(*hub_arguments(answer="answer_text"))


# --- the tools: predict's --file, run_qa's one line -------------------------------------------


def test_predict_reads_a_table_through_its_column_flags(monkeypatch, tmp_path):
    asked = {}

    def answer_questions(model, examples, **settings):
        asked["examples"] = examples
        raise SystemExit("stop after reading")

    monkeypatch.setattr(predict_qa, "answer_questions", answer_questions)
    monkeypatch.setattr(predict_qa, "answering_settings", lambda *a, **k: {})
    rows = [{"query": r["question"], "passage": r["context"]} for r in GOOD_ROWS]
    path = write_parquet(tmp_path / "ask.parquet", rows)
    with pytest.raises(SystemExit, match="stop after reading"):
        predict_qa.main([str(tmp_path), "--file", path, "--question_column", "query",
                         "--context_column", "passage"])  # fmt: skip
    assert asked["examples"]["question"] == [r["question"] for r in GOOD_ROWS]


def test_predict_names_a_bad_row_in_one_line(tmp_path):
    path = write_csv(tmp_path / "ask.csv", "question,context\nWho?,\n")
    with pytest.raises(SystemExit, match=r"^error: .*ask.csv: row 1 \(line 2\) has an empty"):
        predict_qa.main([str(tmp_path), "--file", path])


@pytest.mark.slow
@needs_squad
def test_run_qa_refuses_a_bad_csv_row_in_one_line(tmp_path):
    path = write_csv(tmp_path / "own.csv", HEADER + "Who?,Ada wrote,Ada,x\n")
    line = refusal("--train_file", path, "--answer_column", "answer_text", "--output_dir",
                   tmp_path / "out")  # fmt: skip
    assert line.startswith(f"error: {path}: row 1 (line 2)")


def test_the_features_cache_tells_columns_apart(monkeypatch, tmp_path):
    monkeypatch.setattr(windows, "tokenizer_fingerprint", lambda tokenizer: "one tokenizer")
    args = SimpleNamespace(max_seq_length=384, doc_stride=128)
    examples = {"id": ["own-1", "own-2"]}

    def cache_file(columns):
        checksums = {"train": {"path": "own.csv", "sha256": "0" * 64, "columns": columns}}
        return windows.features_cache_file(str(tmp_path), args, None, "train", examples, checksums)

    assert cache_file({"question": "q"}) != cache_file({"question": "context"})


def test_resuming_with_other_columns_is_a_changed_setting(tmp_path):
    def settings(*flags):
        base = ["--output_dir", str(tmp_path), "--do_train", "--report_to", "none"]
        args = parse_arguments([*base, "--train_file", "own.csv", *flags])
        return resume.training_settings(args.model, args.data, args.training)

    changed = resume.differences(settings(), settings("--answer_column", "answer_text"))
    assert changed == ['answer_column: "answers" -> "answer_text"']


def test_an_empty_squad_style_cell_is_no_answer(tmp_path):
    path = write_csv(tmp_path / "v2.csv", 'question,context,answers\nWho?,"Nobody here.",\n')
    examples = load_squad_file(path, allow_unanswerable=True)
    assert examples[0]["answers"] == {"text": [], "answer_start": []}


def test_an_evaluation_reads_only_the_hubs_validation_split(monkeypatch):
    bad_train = datasets.Dataset.from_list([{**GOOD_ROWS[0], "answer_start": 3}])
    hub = {"train": bad_train, "validation": datasets.Dataset.from_list(GOOD_ROWS)}
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: hub)
    data, model, training = hub_arguments(answer="answer_text")
    training.do_train = False
    splits, _ = load_raw_datasets(data, model, training)
    assert content(splits["validation"]) == EXPECTED and splits["train"] is None


def test_a_row_with_an_id_is_named_by_both(tmp_path):
    path = write_csv(
        tmp_path / "ids.csv",
        "id,question,context,answer_text,answer_start\nq7,Who?,Ada wrote,Ada,2\n",
    )
    with pytest.raises(SquadDataError, match=r"ids.csv: row 1 \(line 2, id q7\): the answer"):
        load_squad_file(path, columns=TEXT_AND_START)
