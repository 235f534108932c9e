"""Questions kept in a table (a CSV or Parquet file, a Hub dataset) whose columns may have other
names than SQuAD's, turned into SQuAD records for qa/data/load.py to check.

Four settings name the columns (defaults in brackets): question_column [question],
context_column [context], answer_column [answers] and answer_start_column [answer_start].
The answers come in one of two forms, chosen by whether the table has the answer_start column:

* with it: the answer column holds the answer's text and answer_start_column its character
  offset in the context, one answer per row; an empty (or null) text means "no answer";
* without it: the answer column holds SQuAD-style answers, {"text": [...], "answer_start": [...]}
  (a struct in Parquet and on the Hub, that JSON object written in a CSV cell); an empty cell
  or a null means "no answer" here too.

An `id` and a `title` column are used when present; without an id column a question is named
<file name>-<row>. Rows count from 1; in a CSV file the header is line 1, so row N is line N+1.
"""

import io
import json
import os
import re
from dataclasses import dataclass, fields

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet

from qa.user_files import parse_json, read_bytes, read_text_file

TABLE_SUFFIXES = (".csv", ".parquet")
WHOLE_NUMBER = re.compile(r"\s*-?\d+\s*")


@dataclass(frozen=True)
class Columns:
    """Which column holds what; the field names are the settings' names less `_column`."""

    question: str = "question"
    context: str = "context"
    answer: str = "answers"
    answer_start: str = "answer_start"

    @classmethod
    def of(cls, settings) -> "Columns":
        """From run_qa's DataArguments or predict's flags (their `<name>_column` values)."""
        return cls(**{f.name: getattr(settings, f"{f.name}_column") for f in fields(cls)})

    def renamed(self) -> bool:
        return self != Columns()


def is_table(path: str) -> bool:
    return path.lower().endswith(TABLE_SUFFIXES)


def read_table(path: str, error: type[Exception], missing_hint: str = "") -> list[dict]:
    """The rows of a CSV or Parquet file as dicts; `error` with one line if it cannot be read."""
    if path.lower().endswith(".csv"):
        return _read_csv(path, error, missing_hint)
    raw = read_bytes(path, error, missing_hint)
    try:
        return pa_parquet.read_table(pa.BufferReader(raw)).to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise error(
            f"{path}: not a Parquet file that can be read ({one_line(err)}); write it again "
            "(e.g. pandas' to_parquet) or give CSV or JSON Lines."
        ) from None


def _read_csv(path: str, error: type[Exception], missing_hint: str) -> list[dict]:
    # Through read_text_file: a missing file, a byte that is not UTF-8 and a byte-order mark
    # are told about as for JSON.
    data = read_text_file(path, error, missing_hint).encode("utf-8")
    if not data.strip():
        raise error(f"{path}: the file is empty.")
    bad_rows = []

    def refuse(row):  # pyarrow's own message does not say which row
        bad_rows.append(row)
        return "error"

    # Rows numbered as they come; a row of the wrong width goes to `refuse`.
    options = {
        "read_options": pa_csv.ReadOptions(use_threads=False),
        "parse_options": pa_csv.ParseOptions(invalid_row_handler=refuse),
    }
    try:
        names = pa_csv.open_csv(io.BytesIO(data), **options).schema.names
        # Every column as text: a context "1990" or an id "007" stays as written; answer_start
        # is read per row, so that a bad value is named with its row.
        table = pa_csv.read_csv(
            io.BytesIO(data),
            **options,
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
        )
    except pa.ArrowException as err:
        if bad_rows and bad_rows[0].number is not None:
            row = bad_rows[0]
            raise error(
                f"{path}: row {row.number - 1} (line {row.number}) has {row.actual_columns} "
                f"values where the header names {row.expected_columns}; put a value that holds "
                'a comma or a line break in double quotes ("..."), or fix that row.'
            ) from None
        raise error(
            f"{path}: not a CSV file that can be read ({one_line(err)}); save it as CSV with a "
            "header row."
        ) from None
    return table.to_pylist()


def one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:200]


def check_columns(names: list[str], columns: Columns, path: str, error, answers_optional: bool):
    """`error` naming the first column the settings ask for that the table lacks."""
    wanted = [("question", "questions"), ("context", "contexts")]
    if not answers_optional:
        wanted.append(("answer", "answers"))
    for field_name, holds in wanted:
        name = getattr(columns, field_name)
        if name not in names:
            raise error(
                f"{path}: has no column '{name}' (its columns: {', '.join(names) or 'none'}); "
                f"set {field_name}_column to the column that holds the {holds}, or rename it "
                f"'{name}' there."
            )


def squad_record(
    record: dict,
    columns: Columns,
    text_and_start: bool,
    where: str,
    path: str,
    error,
    default_id: str,
) -> dict:
    """The row as a JSON Lines SQuAD record, for the checks every record gets."""
    squad = {
        "id": record.get("id", default_id),
        "title": record.get("title") or "",
        "context": record.get(columns.context),
        "question": record.get(columns.question),
    }
    if columns.answer in record:
        squad["answers"] = answers_of(record, columns, text_and_start, where, path, error)
    return squad


def answers_of(record: dict, columns: Columns, text_and_start: bool, where, path, error):
    value = record.get(columns.answer)
    if value is None or value == "":
        return {"text": [], "answer_start": []}  # no answer (SQuAD 2.0), in either form
    if text_and_start:
        return {"text": [value], "answer_start": [whole_number(record.get(columns.answer_start))]}
    if not isinstance(value, str):
        return value  # a struct: its shape is checked with the record
    try:
        return parse_json(value)
    except json.JSONDecodeError:
        raise error(
            f"{path}: {where}: its '{columns.answer}' holds {value[:40]!r}, not SQuAD-style "
            f"answers in JSON, and the table has no '{columns.answer_start}' column with the "
            "start of a text; add that column (or set answer_start_column to the one that "
            'holds the starts), or write {"text": [...], "answer_start": [...]} there.'
        ) from None


def whole_number(value):
    """A whole number written as text (CSV) or as a float (pandas writes an integer column
    with gaps so) as an int; anything else as it is, for the record check to name it."""
    if isinstance(value, str) and WHOLE_NUMBER.fullmatch(value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def misplaced_answer(row: dict, where: str, path: str) -> str | None:
    """One line for the first answer of `row` that is not at its answer_start, or None."""
    context = row["context"]
    for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"], strict=True):
        found = context[start : start + len(text)]
        if found == text:
            continue
        elsewhere = context.find(text)
        hint = f" (it first occurs at {elsewhere})" if elsewhere >= 0 else ""
        return (
            f"{path}: {where}: the answer {text!r} is not at answer_start {start}, where the "
            f"context reads {found!r}{hint}; fix answer_start so that "
            "context[start:start+len(text)] is the answer."
        )
    return None


def row_name(number: int, path: str, record: dict) -> str:
    """How an error names a row: its number (and line, in CSV), and its id if it has one."""
    notes = [f"line {number + 1}"] if path.lower().endswith(".csv") else []
    notes += [f"id {record['id']}"] if "id" in record else []
    return f"row {number}" + (f" ({', '.join(notes)})" if notes else "")


def default_id(path: str, number: int) -> str:
    return f"{os.path.splitext(os.path.basename(path))[0]}-{number}"
