"""Tests for qa.data.load: reading SQuAD files, reporting bad input, subsetting and path expansion."""

import json
import os
from pathlib import Path

import pytest
from datasets import Dataset

import qa.data.load
from qa.data.load import SquadDataError, load_squad_file, resolve_data_path, take_fraction

REPO_ROOT = Path(__file__).resolve().parent.parent
SQUAD_DIR = Path(os.environ.get("SQUAD_DIR", REPO_ROOT.parent / "shared" / "squad"))
FIXTURES = REPO_ROOT / "tests" / "fixtures"  # tiny SQuAD files for the fast tier

CONTEXT_A = "Bramford lies on the river Wend. It was founded in 1204 by wool merchants."
CONTEXT_B = "The bridge was rebuilt by Margaret Holloway and opened in 1662."

# One nested SQuAD document and the same questions as JSON Lines. q3 is a SQuAD 2.0 style
# "impossible" question that still lists an answer: the loader must drop it, as 2.0 does.
NESTED = {
    "version": "test",
    "data": [
        {
            "title": "Bramford",
            "paragraphs": [
                {
                    "context": CONTEXT_A,
                    "qas": [
                        {
                            "id": "q1",
                            "question": "Which river?",
                            "answers": [{"text": "Wend", "answer_start": CONTEXT_A.index("Wend")}],
                        },
                        {
                            "id": "q2",
                            "question": "When was it founded?",
                            "answers": [
                                {"text": "1204", "answer_start": CONTEXT_A.index("1204")},
                                {"text": "in 1204", "answer_start": CONTEXT_A.index("in 1204")},
                            ],
                        },
                    ],
                }
            ],
        },
        {
            "title": "Bridge",
            "paragraphs": [
                {
                    "context": CONTEXT_B,
                    "qas": [
                        {
                            "id": "q3",
                            "question": "Who demolished the bridge?",
                            "is_impossible": True,
                            "answers": [{"text": "Margaret", "answer_start": 26}],
                        },
                        {
                            "id": "q4",
                            "question": "Who rebuilt the bridge?",
                            "is_impossible": False,
                            "answers": [
                                {
                                    "text": "Margaret Holloway",
                                    "answer_start": CONTEXT_B.index("Margaret"),
                                }
                            ],
                        },
                    ],
                }
            ],
        },
    ],
}


def flat_records() -> list[dict]:
    """The NESTED questions as flat JSONL records, written out by hand from the nested form."""
    return [
        {
            "id": "q1",
            "title": "Bramford",
            "context": CONTEXT_A,
            "question": "Which river?",
            "answers": {"text": ["Wend"], "answer_start": [27]},
        },
        {
            "id": "q2",
            "title": "Bramford",
            "context": CONTEXT_A,
            "question": "When was it founded?",
            "answers": {"text": ["1204", "in 1204"], "answer_start": [51, 48]},
        },
        {
            "id": "q3",
            "title": "Bridge",
            "context": CONTEXT_B,
            "question": "Who demolished the bridge?",
            "answers": {"text": [], "answer_start": []},
        },
        {
            "id": "q4",
            "title": "Bridge",
            "context": CONTEXT_B,
            "question": "Who rebuilt the bridge?",
            "answers": {"text": ["Margaret Holloway"], "answer_start": [26]},
        },
    ]


def write_json(path: Path, document) -> str:
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def nested_with(**qa_changes) -> dict:
    """NESTED with q1's question record changed (None deletes a key)."""
    document = json.loads(json.dumps(NESTED))
    qa = document["data"][0]["paragraphs"][0]["qas"][0]
    for key, value in qa_changes.items():
        if value is None:
            del qa[key]
        else:
            qa[key] = value
    return document


def assert_error(path: str, needle: str, allow_unanswerable: bool = False) -> str:
    """Loading must fail with a SquadDataError naming the file and the offending record."""
    with pytest.raises(SquadDataError) as excinfo:
        load_squad_file(path, allow_unanswerable=allow_unanswerable)
    message = str(excinfo.value)
    assert path in message
    assert needle in message
    return message


def real_file(name: str) -> str:
    path = SQUAD_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} not present; set SQUAD_DIR to the folder holding the SQuAD files")
    return str(path)


# --- the two layouts ----------------------------------------------------------------------


def test_flat_records_offsets_are_right():
    # Guards the hand-written fixture itself, so a typo there cannot mask a loader bug.
    for record in flat_records():
        answers = record["answers"]
        for text, start in zip(answers["text"], answers["answer_start"], strict=True):
            assert record["context"][start : start + len(text)] == text


def test_nested_and_jsonl_give_identical_datasets(tmp_path):
    nested = load_squad_file(write_json(tmp_path / "n.json", NESTED), allow_unanswerable=True)
    flat = load_squad_file(write_jsonl(tmp_path / "f.jsonl", flat_records()), True)
    assert nested.features == flat.features == qa.data.load.SQUAD_FEATURES
    assert nested.column_names == ["id", "title", "context", "question", "answers"]
    assert nested.to_list() == flat.to_list()
    assert nested.to_list() == flat_records()


def test_titles_and_order_are_kept(tmp_path):
    dataset = load_squad_file(write_json(tmp_path / "n.json", NESTED), allow_unanswerable=True)
    assert dataset["id"] == ["q1", "q2", "q3", "q4"]
    assert dataset["title"] == ["Bramford", "Bramford", "Bridge", "Bridge"]


def test_is_impossible_empties_answers(tmp_path):
    dataset = load_squad_file(write_json(tmp_path / "n.json", NESTED), allow_unanswerable=True)
    by_id = {row["id"]: row for row in dataset}
    assert by_id["q3"]["answers"] == {"text": [], "answer_start": []}
    # is_impossible: false must leave the answers alone.
    assert by_id["q4"]["answers"] == {"text": ["Margaret Holloway"], "answer_start": [26]}


def test_all_gold_answers_are_kept(tmp_path):
    dataset = load_squad_file(write_json(tmp_path / "n.json", NESTED), allow_unanswerable=True)
    assert dataset[1]["answers"] == {"text": ["1204", "in 1204"], "answer_start": [51, 48]}


def test_missing_title_becomes_empty_string(tmp_path):
    document = json.loads(json.dumps(NESTED))
    del document["data"][0]["title"]
    records = flat_records()
    del records[0]["title"]
    nested = load_squad_file(write_json(tmp_path / "n.json", document), allow_unanswerable=True)
    flat = load_squad_file(write_jsonl(tmp_path / "f.jsonl", records), allow_unanswerable=True)
    assert nested[0]["title"] == flat[0]["title"] == ""


def test_numeric_ids_become_strings(tmp_path):
    records = flat_records()[:2]
    records[0]["id"], records[1]["id"] = 7, 8
    dataset = load_squad_file(write_jsonl(tmp_path / "f.jsonl", records))
    assert dataset["id"] == ["7", "8"]


def test_jsonl_blank_lines_are_skipped(tmp_path):
    lines = [json.dumps(r) for r in flat_records()[:2]]
    path = tmp_path / "f.jsonl"
    path.write_text("\n" + lines[0] + "\n\n   \n" + lines[1] + "\n\n", encoding="utf-8")
    assert load_squad_file(str(path))["id"] == ["q1", "q2"]


def test_single_line_jsonl_loads(tmp_path):
    dataset = load_squad_file(write_jsonl(tmp_path / "one.jsonl", flat_records()[:1]))
    assert dataset["id"] == ["q1"]


# --- the official files --------------------------------------------------------------------


@pytest.mark.slow
def test_dev_v1_loads():
    dataset = load_squad_file(real_file("dev-v1.1.json"))
    assert len(dataset) == 10570
    assert len(set(dataset["id"])) == 10570
    assert dataset.features == qa.data.load.SQUAD_FEATURES
    # v1.1 dev has up to several gold answers per question and never none.
    assert min(len(a["text"]) for a in dataset["answers"]) >= 1


@pytest.mark.slow
def test_dev_v2_loads_with_unanswerable():
    dataset = load_squad_file(real_file("dev-v2.0.json"), allow_unanswerable=True)
    assert len(dataset) == 11873
    assert sum(not a["text"] for a in dataset["answers"]) == 5945


@pytest.mark.slow
def test_dev_v2_without_unanswerable_says_how_to_fix():
    path = real_file("dev-v2.0.json")
    message = assert_error(path, "version_2_with_negative")
    assert "5945" in message


def test_tiny_v1_fixture_loads():
    dataset = load_squad_file(str(FIXTURES / "squad-v1.1-tiny.json"))
    assert len(dataset) == len(set(dataset["id"])) == 9
    assert dataset.features == qa.data.load.SQUAD_FEATURES
    assert min(len(a["text"]) for a in dataset["answers"]) >= 1


def test_tiny_v2_fixture_loads_with_unanswerable_and_refuses_without():
    path = str(FIXTURES / "squad-v2.0-tiny.json")
    dataset = load_squad_file(path, allow_unanswerable=True)
    assert len(dataset) == 12
    assert sum(not a["text"] for a in dataset["answers"]) == 3
    assert "3" in assert_error(path, "version_2_with_negative")


# --- errors: every one names the file and the record -----------------------------------------


def test_missing_file(tmp_path):
    assert_error(str(tmp_path / "nope.json"), "no such file")


@pytest.mark.parametrize("text", ["", "  \n\n"])
def test_empty_file(tmp_path, text):
    path = tmp_path / "empty.json"
    path.write_text(text, encoding="utf-8")
    assert_error(str(path), "empty")


def test_not_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("this is not json\n", encoding="utf-8")
    assert_error(str(path), "line 1")


@pytest.mark.parametrize(
    ("document", "needles"),
    [
        ({"version": "1.1"}, ["top level", "'data'"]),
        ({"data": [{"title": "x"}]}, ["article 0", "'paragraphs'"]),
        ({"data": [{"title": "x", "paragraphs": [{"context": "c"}]}]}, ["paragraph 0", "'qas'"]),
        ({"data": [{"title": "x", "paragraphs": [{"qas": []}]}]}, ["paragraph 0", "'context'"]),
    ],
    ids=["data", "paragraphs", "qas", "context"],
)
def test_nested_missing_structure_keys(tmp_path, document, needles):
    message = assert_error(write_json(tmp_path / "bad.json", document), needles[0])
    assert needles[1] in message


@pytest.mark.parametrize("key", ["question", "answers"])
def test_nested_missing_question_keys_name_the_id(tmp_path, key):
    message = assert_error(write_json(tmp_path / "bad.json", nested_with(**{key: None})), "q1")
    assert f"'{key}'" in message


def test_nested_missing_id_names_the_position(tmp_path):
    # Without an id the only handle on the record is its position in the paragraph.
    message = assert_error(write_json(tmp_path / "bad.json", nested_with(id=None)), "question 0")
    assert "'id'" in message


def test_nested_answer_missing_text(tmp_path):
    document = nested_with(answers=[{"answer_start": 3}])
    message = assert_error(write_json(tmp_path / "bad.json", document), "q1")
    assert "'text'" in message


@pytest.mark.parametrize("key", ["id", "context", "question", "answers"])
def test_jsonl_missing_field_names_the_line(tmp_path, key):
    records = flat_records()
    del records[2][key]
    message = assert_error(write_jsonl(tmp_path / "bad.jsonl", records), "line 3")
    assert f"'{key}'" in message


def test_jsonl_invalid_line_names_the_line(tmp_path):
    lines = [json.dumps(r) for r in flat_records()]
    lines[1] = lines[1][:-5]  # cut off the closing braces
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    message = assert_error(str(path), "line 2")
    assert "not valid JSON" in message


@pytest.mark.parametrize(
    "answers",
    [["Wend"], {"text": ["Wend"]}, {"answer_start": [27]}],
    ids=["list", "no-start", "no-text"],
)
def test_jsonl_answers_of_wrong_shape(tmp_path, answers):
    records = flat_records()
    records[1]["answers"] = answers
    message = assert_error(write_jsonl(tmp_path / "bad.jsonl", records), "line 2")
    assert "answer_start" in message or "'text'" in message


@pytest.mark.parametrize(
    ("key", "value"), [("context", ""), ("context", "  \n"), ("question", " ")]
)
def test_empty_context_or_question(tmp_path, key, value):
    records = flat_records()
    records[1][key] = value
    records[1]["answers"] = {"text": [], "answer_start": []}  # so only the emptiness is wrong
    message = assert_error(write_jsonl(tmp_path / "bad.jsonl", records), "q2", True)
    assert "empty" in message


def test_duplicate_ids(tmp_path):
    records = flat_records()
    records[3]["id"] = "q1"
    message = assert_error(write_jsonl(tmp_path / "bad.jsonl", records), "'q1'", True)
    assert "duplicate" in message


def test_duplicate_ids_across_articles_in_nested(tmp_path):
    document = json.loads(json.dumps(NESTED))
    document["data"][1]["paragraphs"][0]["qas"][1]["id"] = "q2"
    assert_error(write_json(tmp_path / "bad.json", document), "'q2'", allow_unanswerable=True)


@pytest.mark.parametrize("start", [26, 28, -4, 1000], ids=["early", "late", "negative", "past-end"])
def test_answer_start_not_at_text(tmp_path, start):
    records = flat_records()
    records[0]["answers"]["answer_start"] = [start]
    message = assert_error(write_jsonl(tmp_path / "bad.jsonl", records), "q1", True)
    assert "answer_start" in message


@pytest.mark.parametrize("layout", ["nested", "jsonl"])
@pytest.mark.parametrize(
    ("text", "start"),
    [("merchants", -10), ("ramf", True), ("Wend", 27.0), ("Wend", "27"), ("Wend", None)],
    ids=["negative-slice-matches", "true-as-1", "float", "string", "null"],
)
def test_answer_start_must_be_a_non_negative_integer(tmp_path, layout, text, start):
    # Each of these slices out the answer text (or once did pass as an int); all are wrong.
    records = flat_records()
    records[0]["answers"] = {"text": [text], "answer_start": [start]}
    if layout == "jsonl":
        path = write_jsonl(tmp_path / "bad.jsonl", records)
    else:
        path = write_json(
            tmp_path / "bad.json", nested_with(answers=[{"text": text, "answer_start": start}])
        )
    message = assert_error(path, "q1", True)
    assert f"answer_start {json.dumps(start)}" in message and "whole number >= 0" in message


def test_answer_start_checked_for_every_gold_answer(tmp_path):
    # The first answer is right; the second is off by one and must still be caught.
    records = flat_records()
    records[1]["answers"]["answer_start"] = [51, 47]
    assert_error(write_jsonl(tmp_path / "bad.jsonl", records), "q2", True)


def test_answer_start_in_nested_layout(tmp_path):
    document = nested_with(answers=[{"text": "Wend", "answer_start": 0}])
    assert_error(write_json(tmp_path / "bad.json", document), "q1")


@pytest.mark.parametrize("layout", ["nested", "jsonl"])
def test_unanswerable_rejected_unless_allowed(tmp_path, layout):
    if layout == "nested":
        path = write_json(tmp_path / "n.json", NESTED)
    else:
        path = write_jsonl(tmp_path / "f.jsonl", flat_records())
    message = assert_error(path, "q3")
    assert "version_2_with_negative" in message
    assert len(load_squad_file(path, allow_unanswerable=True)) == 4


def test_squad_data_error_is_a_value_error():
    # Callers that catch ValueError (argument parsing, config checks) must see these too.
    assert issubclass(SquadDataError, ValueError)


def test_answer_lists_of_different_lengths(tmp_path):
    records = flat_records()
    records[1]["answers"] = {"text": ["1204", "in 1204"], "answer_start": [51]}
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(ValueError) as excinfo:
        load_squad_file(path)
    assert isinstance(excinfo.value, SquadDataError)
    assert path in str(excinfo.value) and "q2" in str(excinfo.value)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"answers": {"text": "Paris", "answer_start": 0}}, "malformed 'answers'"),
        ({"answers": ["Paris"]}, "no 'text' field"),
        ({"context": None}, "empty or non-text 'context'"),
        ({"question": "   "}, "empty or non-text 'question'"),
        ({"answers": {"text": [""], "answer_start": [3]}}, "empty answer text"),
    ],
)
def test_malformed_jsonl_records_name_the_record(tmp_path, change, problem):
    records = flat_records()
    records[1].update(change)
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    message = assert_error(path, "line 2")
    assert problem in message and "q2" in message


def test_jsonl_extra_fields_and_is_impossible(tmp_path):
    records = flat_records()
    for record in records:
        record["is_impossible"] = False
    records[0]["is_impossible"] = True
    dataset = load_squad_file(write_jsonl(tmp_path / "f.jsonl", records), allow_unanswerable=True)
    assert dataset.column_names == list(qa.data.load.SQUAD_FEATURES)
    assert dataset[0]["answers"] == {"text": [], "answer_start": []}
    assert dataset[1]["answers"] == records[1]["answers"]


# --- take_fraction ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def thousand() -> Dataset:
    return Dataset.from_dict({"row": list(range(1000))})


def test_take_fraction_is_deterministic_per_seed(thousand):
    assert take_fraction(thousand, 0.1, 42)["row"] == take_fraction(thousand, 0.1, 42)["row"]


def test_take_fraction_seeds_differ(thousand):
    picks = {tuple(take_fraction(thousand, 0.1, seed)["row"]) for seed in range(5)}
    assert len(picks) == 5


@pytest.mark.parametrize(
    ("size", "fraction", "expected"),
    [(1000, 0.1, 100), (1000, 0.333, 333), (1000, 0.0017, 2), (7, 0.3, 2), (7, 0.99, 7)],
)
def test_take_fraction_size(size, fraction, expected):
    dataset = Dataset.from_dict({"row": list(range(size))})
    assert len(take_fraction(dataset, fraction, seed=0)) == expected == round(size * fraction)


def test_take_fraction_never_empty(thousand):
    # round(1000 * 0.0001) is 0; an empty training set is never what was meant.
    assert len(take_fraction(thousand, 0.0001, seed=0)) == 1


def test_take_fraction_keeps_file_order_and_rows(thousand):
    rows = take_fraction(thousand, 0.2, seed=3)["row"]
    assert rows == sorted(set(rows))


def test_take_fraction_is_spread_not_a_prefix(thousand):
    # The first N questions all come from the first few articles; the sample must span the file.
    rows = take_fraction(thousand, 0.1, seed=0)["row"]
    assert rows != list(range(100))
    assert rows[0] < 100 and rows[-1] > 900
    assert sum(r >= 500 for r in rows) >= 30


def test_take_fraction_keeps_every_column(tmp_path):
    dataset = load_squad_file(write_jsonl(tmp_path / "f.jsonl", flat_records()), True)
    subset = take_fraction(dataset, 0.5, seed=1)
    by_id = {row["id"]: row for row in dataset}
    assert len(subset) == 2
    assert subset.features == dataset.features
    for row in subset:
        assert row == by_id[row["id"]]


def test_take_fraction_one_returns_everything(thousand):
    assert take_fraction(thousand, 1.0, seed=9)["row"] == list(range(1000))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, 2])
def test_take_fraction_out_of_range(thousand, fraction):
    with pytest.raises(SquadDataError, match="train_fraction"):
        take_fraction(thousand, fraction, seed=0)


# --- resolve_data_path -----------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["$SQUAD_DIR/train.json", "${SQUAD_DIR}/train.json"])
def test_resolve_data_path_uses_squad_dir(monkeypatch, tmp_path, pattern):
    monkeypatch.setenv("SQUAD_DIR", str(tmp_path / "data"))
    assert resolve_data_path(pattern) == str(tmp_path / "data" / "train.json")


def test_resolve_data_path_default(monkeypatch):
    monkeypatch.delenv("SQUAD_DIR", raising=False)
    expected = REPO_ROOT.parent / "shared" / "squad" / "dev-v1.1.json"
    # the same file, whichever way a link in the path is followed
    assert Path(resolve_data_path("$SQUAD_DIR/dev-v1.1.json")).resolve() == expected.resolve()


def test_resolve_data_path_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_path("~/squad/dev.json") == str(tmp_path / "squad" / "dev.json")


def test_resolve_data_path_leaves_plain_paths(monkeypatch):
    monkeypatch.setenv("SQUAD_DIR", "/elsewhere")
    assert resolve_data_path("/data/dev.json") == "/data/dev.json"
    assert resolve_data_path("relative/dev.json") == "relative/dev.json"
