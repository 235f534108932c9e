"""Load SQuAD-style question answering data into one `datasets` schema, checked on the way in.

Two local layouts are accepted and give the same columns as the Hub's `squad` / `squad_v2`
(`id, title, context, question, answers{text, answer_start}`):

* the official nested JSON (`{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}`);
* flat JSON Lines, one question per line with exactly those columns.

Every problem is reported as a `SquadDataError` that names the file, the record and the fix.
"""

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from datasets import Dataset, Features, List, Value

from qa import ROOT
from qa.data.download import DataFolderError, download
from qa.data.files import MIRROR_SUMS, OFFICIAL_FILES, default_squad_dir, url_of
from qa.data.tables import (
    Columns,
    check_columns,
    default_id,
    is_table,
    misplaced_answer,
    read_table,
    row_name,
    squad_record,
)
from qa.user_files import lone_surrogate, parse_json, read_text_file

logger = logging.getLogger("run_qa.squad_data")  # a child of run_qa's logger: lands in train.log

SQUAD_FEATURES = Features(
    {
        "id": Value("string"),
        "title": Value("string"),
        "context": Value("string"),
        "question": Value("string"),
        "answers": {"text": List(Value("string")), "answer_start": List(Value("int32"))},
    }
)

SQUAD_COLUMNS = {"id", "context", "question", "answers"}

# Where qa/data/split.py writes the article split of dev-v2.0 unless SQUAD_V2_SPLIT_DIR says otherwise.
DEFAULT_SPLIT_DIR = ROOT / ".cache" / "squad-v2-split"
# Defaults are looked up when a path is resolved: `make data` may have just filled the cache.
PATH_VARIABLES = {
    "SQUAD_V2_SPLIT_DIR": lambda: DEFAULT_SPLIT_DIR,
    "SQUAD_V2_STANDIN_DIR": lambda: (
        ROOT / ".cache" / "squad-v2-standin"
    ),  # python -m qa.data.standin
    "SQUAD_DIR": default_squad_dir,
}


class SquadDataError(ValueError):
    """Input data that cannot be used as it is; the message says where and what to do."""


def resolve_data_path(path: str) -> str:
    """Expand `$SQUAD_DIR` and `$SQUAD_V2_SPLIT_DIR` (with their defaults) and `~` in a path."""
    for name, default in PATH_VARIABLES.items():
        value = os.environ.get(name) or str(default())
        path = path.replace("${" + name + "}", value).replace("$" + name, value)
    return os.path.expanduser(path)


def points_into(path: str | None, variable: str) -> bool:
    """Does a configured path point into the folder of `variable`, e.g. SQUAD_V2_SPLIT_DIR (the
    dev-v2.0 article split) or SQUAD_V2_STANDIN_DIR (the stand-in), both built on demand?"""
    return bool(path) and (f"${variable}" in path or f"${{{variable}}}" in path)


def official_files_to_fetch(data_args, training_args) -> list[str]:
    """The files this run reads from $SQUAD_DIR that are official SQuAD files and missing there:
    those `make data` does not fetch by default (train-v2.0.json), or a folder not yet filled."""
    read = []
    if training_args.do_train:
        read += [data_args.train_file, *extra_train_paths(data_args)]
    if training_args.do_eval:
        read += [data_args.validation_file, data_args.threshold_file]
    missing = []
    for path in read:
        resolved = resolve_data_path(path) if points_into(path, "SQUAD_DIR") else ""
        if os.path.basename(resolved) in OFFICIAL_FILES and not os.path.exists(resolved):
            missing.append(resolved)
    return missing


def fetch_official_file(path: str) -> None:
    """Download one official file to `path`, checked against its official size and sha256;
    SquadDataError, one line saying what to download and where, when that cannot be done."""
    official, folder = OFFICIAL_FILES[os.path.basename(path)], os.path.dirname(path)
    url = url_of(official.name)
    fix = (
        f"download {url} ({official.size:,} bytes, sha256 {official.sha256}) into {folder}, or "
        "set SQUAD_DIR to a folder that holds it"
    )
    if os.path.isfile(os.path.join(folder, MIRROR_SUMS)):  # a mirror's files are its owner's
        raise SquadDataError(
            f"{path}: no such file, and {folder} is a local mirror (it has {MIRROR_SUMS}), which "
            f"the recipe never downloads into: {fix} (and add its sha256 to {MIRROR_SUMS})."
        )
    logger.info("%s is missing: downloading %s", path, url)
    try:
        download(url, Path(path), official.size, official.sha256)
    except DataFolderError as err:
        raise SquadDataError(
            f"{path}: no such file, and downloading it failed ({err}); {fix}."
        ) from None


def fetch_official_files(data_args, training_args) -> None:
    """Fetch what official_files_to_fetch names, before anything reads or hashes it: once, by
    the main process of the whole run, on the shared filesystem."""
    if not official_files_to_fetch(data_args, training_args):
        return
    with training_args.main_process_first(local=False, desc="downloading SQuAD files"):
        # Looked up again inside: the other processes find the files the main one fetched.
        for path in official_files_to_fetch(data_args, training_args):
            fetch_official_file(path)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _require(record: dict, key: str, where: str, path: str):
    if not isinstance(record, dict) or key not in record:
        raise SquadDataError(
            f"{path}: {where} has no '{key}' field. Each record needs it in the SQuAD layout "
            "(see README, 'Data'); fix or remove that record."
        )
    return record[key]


def _make_row(
    qa: dict, title, context, where: str, path: str, answers_optional=False, names=None
) -> dict:
    """One question in the Hub's schema, from a nested `qas` entry or a JSON Lines record (or a
    table's row: `names` then maps a field to the column it came from, for the messages)."""
    names = names or {}
    if answers_optional and isinstance(qa, dict) and "answers" not in qa:
        qa = {**qa, "answers": []}  # a question to answer, not to score
    answers = _require(qa, "answers", where, path)
    if isinstance(answers, dict):  # flat layout: {"text": [...], "answer_start": [...]}
        texts, starts = answers.get("text"), answers.get("answer_start")
    elif isinstance(answers, list):  # nested layout: [{"text", "answer_start"}, ...]
        texts = [_require(x, "text", where, path) for x in answers]
        starts = [_require(x, "answer_start", where, path) for x in answers]
    else:
        texts = starts = None
    if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
        raise SquadDataError(
            f"{path}: {where} has malformed 'answers': give a list of {{text, answer_start}} "
            "(nested layout) or {'text': [...], 'answer_start': [...]} of equal length (JSON Lines)."
        )
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise SquadDataError(
            f"{path}: {where} has is_impossible {json.dumps(impossible)}: it must be true or "
            "false; fix that record."
        )
    if impossible:
        texts, starts = [], []  # 2.0 keeps plausible answers apart; the gold answer is "none"
    qid = _require(qa, "id", where, path)
    # Whole-number ids are read as text (some tools write them so); nothing else names a question.
    if type(qid) is not int and (not isinstance(qid, str) or not qid.strip()):
        raise SquadDataError(
            f"{path}: {where} has id {json.dumps(qid)}: it must be a non-empty string; fix that "
            "record."
        )
    row = {
        "id": str(qid),
        "title": title if isinstance(title, str) else "",
        "context": context,
        "question": _require(qa, "question", where, path),
        "answers": {"text": texts, "answer_start": starts},
    }
    for key in ("context", "question"):
        if not isinstance(row[key], str) or not row[key].strip():
            raise SquadDataError(
                f"{path}: {where} has an empty or non-text '{names.get(key, key)}'; fix or remove "
                "that record."
            )
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise SquadDataError(
            f"{path}: {where} has an empty answer text; mark it unanswerable "
            "(no answers) or fix the text."
        )
    for start in starts:
        # A negative start slices from the end and can still match the text; True is an int.
        if type(start) is not int or start < 0:
            raise SquadDataError(
                f"{path}: {where} has {names.get('answer_start', 'answer_start')} "
                f"{json.dumps(start)}: it must be a whole number "
                ">= 0 (the answer's character offset in the context); fix that record."
            )
    return row


def _rows_from_nested(document: dict, path: str, answers_optional=False) -> list[dict]:
    rows = []
    for a, article in enumerate(_require(document, "data", "the top level", path)):
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, paragraph in enumerate(_require(article, "paragraphs", f"article {a}", path)):
            context = _require(paragraph, "context", f"article {a} paragraph {p}", path)
            for q, qa in enumerate(_require(paragraph, "qas", f"article {a} paragraph {p}", path)):
                where = f"question {qa.get('id', q) if isinstance(qa, dict) else q!r}"
                rows.append(_make_row(qa, title, context, where, path, answers_optional))
    return rows


def _rows_from_lines(lines: list[str], path: str, answers_optional=False) -> list[dict]:
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = parse_json(line)
        except json.JSONDecodeError as err:
            raise SquadDataError(f"{path}, line {number}: not valid JSON ({err.msg}).") from None
        where = f"line {number}" + (
            f" (id {record['id']})" if isinstance(record, dict) and "id" in record else ""
        )
        context = _require(record, "context", where, path)
        rows.append(
            _make_row(record, record.get("title", ""), context, where, path, answers_optional)
        )
    return rows


def _rows_from_table(
    records: list[dict], path: str, columns: Columns, answers_optional=False
) -> list[dict]:
    """A table's rows (CSV, Parquet, a Hub split) as checked rows, each error naming its row."""
    names = list(records[0]) if records else []
    if records:  # none: _check_rows says the file holds no questions
        check_columns(names, columns, path, SquadDataError, answers_optional)
    text_and_start = columns.answer_start in names
    shown = {"context": columns.context, "question": columns.question}
    if text_and_start:
        shown["answer_start"] = columns.answer_start
    rows = []
    for number, record in enumerate(records, start=1):
        where = row_name(number, path, record)
        squad = squad_record(
            record, columns, text_and_start, where, path, SquadDataError, default_id(path, number)
        )
        row = _make_row(
            squad, squad["title"], squad["context"], where, path, answers_optional, shown
        )
        if problem := misplaced_answer(row, where, path):
            raise SquadDataError(problem)
        rows.append(row)
    return rows


def table_dataset(
    records: list[dict],
    path: str,
    columns: Columns,
    allow_unanswerable=False,
    answers_optional=False,
) -> Dataset:
    """A table's rows in the Hub's schema, checked as a SQuAD file's are."""
    rows = _rows_from_table(records, path, columns, answers_optional)
    _check_rows(rows, path, allow_unanswerable)
    return _dataset(rows, path)


def _dataset(rows: list[dict], path: str) -> Dataset:
    try:
        # Arrow converts the rows in C++: the same table as Dataset.from_list's Python encoding,
        # for train-v1.1.json in 0.2-0.5 s against 1.2-1.3 s (2 Zen 4 cores, side by side).
        return Dataset(pa.Table.from_pylist(rows, schema=SQUAD_FEATURES.arrow_schema))
    except UnicodeEncodeError:  # looked for only then: the check costs nothing on good files
        raise _surrogate_in(path, rows) from None


def _check_rows(rows: list[dict], path: str, allow_unanswerable: bool) -> None:
    if not rows:
        raise SquadDataError(
            f"{path}: holds no questions. Point the config at a non-empty SQuAD file."
        )
    seen, duplicates, misplaced, unanswerable = set(), [], [], []
    for row in rows:
        if row["id"] in seen:
            duplicates.append(row["id"])
        seen.add(row["id"])
        texts, starts = row["answers"]["text"], row["answers"]["answer_start"]
        if not texts:
            unanswerable.append(row["id"])
        for text, start in zip(texts, starts, strict=True):
            if not isinstance(start, int) or row["context"][start : start + len(text)] != text:
                misplaced.append(row["id"])
                break
    if duplicates:
        raise SquadDataError(
            f"{path}: {len(duplicates)} duplicate question ids, e.g. {duplicates[:3]}; ids must be unique."
        )
    if misplaced:
        raise SquadDataError(
            f"{path}: {len(misplaced)} answers whose answer_start does not point at their text, "
            f"e.g. questions {misplaced[:3]}; fix the offsets (context[start:start+len(text)] == text)."
        )
    if unanswerable and not allow_unanswerable:
        raise SquadDataError(
            f"{path}: {len(unanswerable)} questions have no answer (SQuAD 2.0 style), e.g. "
            f"{unanswerable[:3]}; set version_2_with_negative to true to train and score them."
        )


MISSING_HINT = (
    "Run `make data` to download the official files, or set SQUAD_DIR or the config's "
    "train_file/validation_file."
)


def load_squad_file(
    path: str,
    allow_unanswerable: bool = False,
    answers_optional: bool = False,
    columns: Columns | None = None,
) -> Dataset:
    """Read one local file into the Hub's schema: SQuAD's nested JSON or JSON Lines, or a CSV or
    Parquet table whose columns `columns` names (qa/data/tables.py).

    answers_optional: records without 'answers' are read as questions to answer (no gold).
    """
    if is_table(path):
        records = read_table(path, SquadDataError, MISSING_HINT)
        return table_dataset(
            records, path, columns or Columns(), allow_unanswerable, answers_optional
        )
    text = read_text_file(path, SquadDataError, missing_hint=MISSING_HINT)
    if not text.strip():
        raise SquadDataError(f"{path}: the file is empty.")
    document, whole_error = None, None
    if not path.endswith(".jsonl"):
        # Not one JSON document? Then maybe JSON Lines under another name.
        try:
            document = parse_json(text)
        except json.JSONDecodeError as err:
            whole_error = err
    if isinstance(document, dict):
        rows = _rows_from_nested(document, path, answers_optional)
    else:
        try:
            rows = _rows_from_lines(text.splitlines(), path, answers_optional)
        except SquadDataError:
            if whole_error is not None and not _first_line_is_json(text):
                raise _truncated_or_invalid(path, text, whole_error) from None
            raise
    _check_rows(rows, path, allow_unanswerable)
    return _dataset(rows, path)


def _surrogate_in(path: str, rows: list[dict]) -> SquadDataError:
    """The first record with a lone surrogate in its text, named with the fix."""
    for row in rows:
        fields = {k: row[k] for k in ("id", "title", "context", "question")}
        fields |= {f"answer {i + 1}": t for i, t in enumerate(row["answers"]["text"])}
        for key, text in fields.items():
            if found := lone_surrogate(text):
                index, code = found
                qid = row["id"].encode("utf-8", "backslashreplace").decode()
                return SquadDataError(
                    f"{path}: question {qid}: its {key} has a lone surrogate \\u{code:04x} at "
                    f"character {index + 1}, half of a character, which cannot be "
                    "stored as text; write the whole character there (or both halves of its "
                    "\\u pair)."
                )
    return SquadDataError(f"{path}: holds text that cannot be encoded as UTF-8; fix the file.")


def _first_line_is_json(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        parse_json(first)
    except json.JSONDecodeError:
        return False
    return True


def _truncated_or_invalid(path: str, text: str, err: json.JSONDecodeError) -> SquadDataError:
    """One JSON document that does not parse: cut short, or broken at a place."""
    unterminated = err.msg.startswith("Unterminated string") and '"' not in text[err.pos + 1 :]
    if err.pos >= len(text.rstrip()) or unterminated:
        return SquadDataError(
            f"{path}: the JSON ends early (line {err.lineno}: {err.msg}); the file looks cut "
            "short: copy or download it again."
        )
    return SquadDataError(
        f"{path}, line {err.lineno} column {err.colno}: not valid JSON ({err.msg}); fix the file "
        "there."
    )


def fraction_problem(fraction: float) -> str | None:
    """What is wrong with a train_fraction, if anything: it must be in (0, 1]."""
    return None if 0.0 < fraction <= 1.0 else f"train_fraction must be in (0, 1], got {fraction}"


def take_fraction(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """A seeded random subset of questions, kept in file order.

    Random rather than the first N, which would all come from the first few articles.
    """
    if problem := fraction_problem(fraction):
        raise SquadDataError(f"{problem}.")
    if fraction == 1.0:
        return dataset
    count = max(1, round(len(dataset) * fraction))
    chosen = np.random.default_rng(seed).choice(len(dataset), size=count, replace=False)
    return dataset.select(np.sort(chosen))


def load_local_file(configured: str, data_args, checksums: dict, key: str):
    path = resolve_data_path(configured)
    columns = Columns.of(data_args)
    examples = load_squad_file(path, data_args.version_2_with_negative, columns=columns)
    checksums[key] = {"path": path, "sha256": sha256_of(path)}
    if is_table(path) and columns.renamed():  # the same file read through other columns
        checksums[key]["columns"] = asdict(columns)
    return examples


def hub_split(split: Dataset | None, name: str, data_args) -> Dataset | None:
    """A Hub split in SQuAD's schema: as it is when it has SQuAD's columns and no other names
    are asked for, else read through the column settings and checked like a local table."""
    columns = Columns.of(data_args)
    if split is None or (not columns.renamed() and set(split.column_names) >= SQUAD_COLUMNS):
        return split
    source = f"{data_args.dataset_name} ({name} split)"
    return table_dataset(split.to_list(), source, columns, data_args.version_2_with_negative)


def extra_train_paths(data_args) -> list[str]:
    """The files added whole, then those whose unanswerable questions only are added."""
    return [*data_args.extra_train_files, *data_args.extra_train_unanswerable_files]


def unanswerable_only(examples: datasets.Dataset) -> datasets.Dataset:
    return examples.filter(lambda answers: not answers["text"], input_columns="answers")


def load_raw_datasets(data_args, model_args, training_args):
    """{"train", "validation", "tune": examples or None}, and the sha256 of each local file.

    train_fraction and max_train_samples thin train_file (or the Hub's train split) only;
    extra_train_files are added whole after it, extra_train_unanswerable_files' unanswerable
    questions after those.
    """
    seed = training_args.seed
    checksums, splits = {}, {}
    if data_args.dataset_name:
        hub = datasets.load_dataset(
            data_args.dataset_name, data_args.dataset_config_name, cache_dir=model_args.cache_dir
        )
        # Only the splits this run reads are converted and checked.
        needed = {"train": training_args.do_train, "validation": training_args.do_eval}
        splits = {
            name: hub_split(hub.get(name), name, data_args) for name in needed if needed[name]
        }
    wanted = (
        ("train", data_args.train_file if training_args.do_train else None),
        ("validation", data_args.validation_file if training_args.do_eval else None),
        ("tune", data_args.threshold_file if training_args.do_eval else None),
    )
    for split, configured in wanted:
        if configured:
            splits[split] = load_local_file(configured, data_args, checksums, split)
    train = splits.get("train") if training_args.do_train else None
    validation = splits.get("validation") if training_args.do_eval else None
    if train is not None:
        fraction_seed = data_args.train_fraction_seed
        train = take_fraction(
            train, data_args.train_fraction, seed if fraction_seed is None else fraction_seed
        )
        if data_args.max_train_samples is not None:
            train = train.select(range(min(data_args.max_train_samples, len(train))))
        extras = [
            load_local_file(path, data_args, checksums, f"train_extra_{i}")
            for i, path in enumerate(data_args.extra_train_files)
        ]
        extras += [
            unanswerable_only(
                load_local_file(path, data_args, checksums, f"train_unanswerable_{i}")
            )
            for i, path in enumerate(data_args.extra_train_unanswerable_files)
        ]
        if extras:
            combined = datasets.concatenate_datasets([train.cast(SQUAD_FEATURES), *extras])
            check_unique_ids(combined["id"], ["train_file", *extra_train_paths(data_args)])
            copies = extras * (data_args.extra_train_repeats - 1)
            train = datasets.concatenate_datasets([combined, *copies])
    tune = splits.get("tune")
    if data_args.max_eval_samples is not None:
        cap = data_args.max_eval_samples
        if validation is not None:
            validation = validation.select(range(min(cap, len(validation))))
        if tune is not None:
            tune = tune.select(range(min(cap, len(tune))))
    for name, split in (("training", train), ("evaluation", validation)):
        if split is not None and len(split) == 0:
            raise SquadDataError(
                f"The {name} subset is empty: check train_fraction, max_train_samples and "
                "max_eval_samples."
            )
    return {"train": train, "validation": validation, "tune": tune}, checksums


def check_unique_ids(ids: list[str], files: list[str]) -> None:
    seen, repeated = set(), []
    for qid in ids:
        if qid in seen:
            repeated.append(qid)
        seen.add(qid)
    if repeated:
        raise SquadDataError(
            f"{', '.join(files)}: {len(repeated)} question ids are in more than one training "
            f"file, e.g. {repeated[:3]}; each question may be trained on once: remove the repeats."
        )
