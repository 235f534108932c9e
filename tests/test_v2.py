"""SQuAD 2.0 on the dev-v2.0 article split: the split, the training mix, the tuned threshold
and where it is used, the samples, and the committed results."""

import hashlib
import json
import random
import shutil

import pytest

import qa.data.split
from helpers.recipe_runner import ROOT, SQUAD_DIR, needs_squad, run_qa
from qa.data.load import load_squad_file
from qa.scoring.samples import draw_questions

# sha256 of the ids (one per line, in training order) of the headline's 17,520 training
# questions: 20% of train-v1.1.json drawn with seed 42. The 2.0 config must train on these.
HEADLINE_IDS_SHA256 = "566c317d98adfeeeb2fc00f234d629d5c0e807d02946246a74c4c360e95f741c"
DEV_V2 = SQUAD_DIR / "dev-v2.0.json"
COMMITTED_RUNS = ["squad-v2-devsplit", "squad-v2-devsplit-x3"]
# The stand-in controls, hard-negative and half-each runs (docs/squad-v2.md), as run_qa.py --results_dir
# wrote them: the held-out part's files at the top, the tuning part's as tune_*.
STANDIN_RUNS = [
    f"standin-controls/squad-v2-standin-{name}"
    for name in ("copies", "other-paragraph", "perturbed", "perturbed-seed43")
] + [
    f"standin-{kind}/squad-v2-standin-{name}{seed}"
    for kind, name in (("hard", "similar-paragraph"), ("mixed", "perturbed-similar"))
    for seed in ("", "-seed43")
]


def ids_digest(ids) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def test_articles_fill_the_parts_in_a_seeded_order():
    counts = [random.Random(i).randint(20, 400) for i in range(35)]
    parts = qa.data.split.assign_articles(counts)
    assert parts == qa.data.split.assign_articles(counts)  # same seed, same split
    assert parts != qa.data.split.assign_articles(counts, seed=7)
    assert set(parts) == set(qa.data.split.PARTS)
    total = sum(counts)
    for part, share in zip(qa.data.split.PARTS, qa.data.split.SHARES):
        got = sum(c for c, p in zip(counts, parts) if p == part) / total
        assert abs(got - share) <= max(counts) / total  # within one article of the target


@needs_squad
@pytest.mark.slow
def test_the_split_keeps_articles_whole_and_adds_up(tmp_path):
    manifest = qa.data.split.ensure_split(str(tmp_path / "split"), str(DEV_V2))
    parts = manifest["parts"]
    titles = [set(parts[p]["titles"]) for p in qa.data.split.PARTS]
    assert all(not (a & b) for i, a in enumerate(titles) for b in titles[i + 1 :])
    assert sum(len(t) for t in titles) == 35
    assert sum(parts[p]["questions"] for p in parts) == 11873
    assert sum(parts[p]["unanswerable"] for p in parts) == 5945
    for part, share in zip(qa.data.split.PARTS, qa.data.split.SHARES):
        data = load_squad_file(str(tmp_path / "split" / f"{part}.json"), allow_unanswerable=True)
        assert len(data) == parts[part]["questions"]
        assert sum(not a["text"] for a in data["answers"]) == parts[part]["unanswerable"]
        assert set(data["title"]) == set(parts[part]["titles"])
        assert abs(len(data) / 11873 - share) < 0.03
    assert manifest["source_sha256"] == hashlib.sha256(DEV_V2.read_bytes()).hexdigest()


@needs_squad
@pytest.mark.slow
def test_the_split_is_the_same_on_every_run_and_kept_while_current(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    qa.data.split.ensure_split(str(first), str(DEV_V2))
    qa.data.split.ensure_split(str(second), str(DEV_V2))
    for name in [*(f"{p}.json" for p in qa.data.split.PARTS), qa.data.split.MANIFEST]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    stamp = (first / "train.json").stat().st_mtime_ns
    qa.data.split.ensure_split(str(first), str(DEV_V2))
    assert (first / "train.json").stat().st_mtime_ns == stamp  # current: not rewritten


def test_a_changed_source_rebuilds_the_split(tmp_path):
    def article(title, n):
        qas = [
            {"id": f"{title}{i}", "question": "q?", "answers": [], "is_impossible": True}
            for i in range(n)
        ]
        return {"title": title, "paragraphs": [{"context": "text", "qas": qas}]}

    source = tmp_path / "dev.json"
    source.write_text(json.dumps({"version": "v2.0", "data": [article("a", 3), article("b", 5)]}))
    first = qa.data.split.ensure_split(str(tmp_path / "split"), str(source))
    source.write_text(json.dumps({"version": "v2.0", "data": [article("c", 4)] * 1}))
    second = qa.data.split.ensure_split(str(tmp_path / "split"), str(source))
    assert first["source_sha256"] != second["source_sha256"]
    assert sum(p["questions"] for p in second["parts"].values()) == 4


def test_a_missing_source_names_the_fix(tmp_path):
    with pytest.raises(qa.data.split.SquadDataError, match="SQUAD_DIR"):
        qa.data.split.ensure_split(str(tmp_path / "split"), str(tmp_path / "nope.json"))
    assert not (tmp_path / "split").exists()


@needs_squad
@pytest.mark.slow
def test_the_v2_config_trains_on_the_headline_questions_plus_the_whole_training_part(
    tmp_path, monkeypatch
):
    import qa.data.load
    import qa.run.config
    import run_qa

    monkeypatch.setenv("SQUAD_V2_SPLIT_DIR", str(tmp_path / "split"))
    monkeypatch.setenv("SQUAD_DIR", str(SQUAD_DIR))
    head = qa.run.config.parse_arguments(
        [str(ROOT / "configs" / "squad20pct.json"), "--do_eval", "false"]
    )
    v2 = qa.run.config.parse_arguments(
        [str(ROOT / "configs" / "squad-v2-devsplit.json"), "--do_eval", "false"]
    )
    manifest = run_qa.prepare_split(v2.data, v2.training)
    headline_train = qa.data.load.load_raw_datasets(head.data, head.model, head.training)[0][
        "train"
    ]
    v2_train = qa.data.load.load_raw_datasets(v2.data, v2.model, v2.training)[0]["train"]
    assert len(headline_train) == 17520
    assert ids_digest(headline_train["id"]) == HEADLINE_IDS_SHA256
    assert ids_digest(v2_train["id"][:17520]) == HEADLINE_IDS_SHA256
    part = load_squad_file(str(tmp_path / "split" / "train.json"), allow_unanswerable=True)
    assert v2_train["id"][17520:] == part["id"]  # the whole training part, not thinned
    unanswerable = sum(not a["text"] for a in v2_train["answers"])
    assert unanswerable == manifest["parts"]["train"]["unanswerable"] > 2800


def test_a_question_in_two_training_files_is_refused():
    import qa.data.load

    with pytest.raises(qa.data.load.SquadDataError, match="more than one training file"):
        qa.data.load.check_unique_ids(["a", "b", "a"], ["train_file", "extra.json"])


def test_samples_draw_both_kinds_of_question_when_there_are_both():
    has_answer = [i % 3 != 0 for i in range(300)]  # a third unanswerable
    for seed in range(50):
        for count in (2, 3, 5, 8):
            chosen = draw_questions(has_answer, count, seed)
            assert len(chosen) == len(set(chosen)) == count and chosen == sorted(chosen)
            kinds = {has_answer[i] for i in chosen}
            assert kinds == {True, False}, (seed, count)
    assert draw_questions(has_answer, 5, 3) == draw_questions(has_answer, 5, 3)
    # Roughly in proportion: a third of 6 is 2.
    assert sum(not has_answer[i] for i in draw_questions(has_answer, 6, 0)) == 2


def test_samples_of_answerable_questions_only_are_the_plain_seeded_draw():
    # SQuAD 1.1 runs keep the samples they always showed.
    assert draw_questions([True] * 100, 5, 42) == sorted(random.Random(42).sample(range(100), 5))
    assert draw_questions([True, False], 5, 1) == [0, 1]
    assert len(draw_questions([False, True, True], 1, 0)) == 1


def rescore(folder, refs_file, threshold, first=None, prefix=""):
    """Official 2.0 scores of a folder's saved spans and null odds at `threshold`, on the
    questions of refs_file (its first `first` ones if given); prefix "tune_" for the tuning
    part a training run saved."""
    import compare_qa

    spans, odds = compare_qa.load_predictions(str(folder), prefix)
    refs = compare_qa.references(str(refs_file))[:first]
    return compare_qa.score(spans, odds, refs, threshold)


@needs_squad
@pytest.mark.slow
def test_v2_smoke_run_tunes_saves_and_uses_one_threshold(smoke_v2_run):
    output, results, stdout = smoke_v2_run
    settings = json.loads((output / "qa_settings.json").read_text())
    tuned = json.loads((output / "tune_results.json").read_text())
    assert settings["version_2_with_negative"] is True
    assert settings["null_score_diff_threshold"] == tuned["tune_best_f1_thresh"]
    assert settings["threshold_tuned_on"]["file"] == "tune.json"
    assert "No-answer threshold" in (output / "train.log").read_text()
    # The evaluation scored the held-out questions at that threshold: its numbers are those of
    # the saved spans and null odds re-scored there, and of the written answers scored as they are.
    evaluated = json.loads((output / "eval_results.json").read_text())
    heldout = ROOT / ".cache" / "squad-v2-split" / "heldout.json"
    again = rescore(output, heldout, settings["null_score_diff_threshold"], first=48)
    for key in ("exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh"):
        assert again[key] == pytest.approx(evaluated[f"eval_{key}"], abs=1e-9), key
    predictions = json.loads((output / "predictions.json").read_text())
    odds = json.loads((output / "null_odds.json").read_text())
    threshold = settings["null_score_diff_threshold"]
    assert all((predictions[q] == "") >= (odds[q] > threshold) for q in predictions)
    # The card names the threshold; the split's manifest travels with the results.
    assert "no-answer threshold" in (output / "README.md").read_text()
    assert (results / "split_manifest.json").is_file() and (results / "qa_settings.json").is_file()


@needs_squad
@pytest.mark.slow
def test_v2_samples_show_an_answerable_and_an_unanswerable_question(smoke_v2_run):
    output, _, _ = smoke_v2_run
    samples = json.loads((output / "samples.json").read_text())
    assert {s["gold_answers"] == [""] for s in samples} == {True, False}


@needs_squad
@pytest.mark.slow
def test_eval_only_run_uses_the_threshold_saved_with_the_model(smoke_v2_run, tmp_path):
    output, _, _ = smoke_v2_run
    run_qa("--model_name_or_path", output, "--do_train", "false", "--threshold_file", "",
           "--output_dir", tmp_path / "e", config=ROOT / "tests" / "configs" / "smoke-v2.json")  # fmt: skip
    assert "saved with the model" in (tmp_path / "e" / "train.log").read_text()
    first = json.loads((output / "eval_results.json").read_text())
    again = json.loads((tmp_path / "e" / "eval_results.json").read_text())
    assert again["eval_f1"] == first["eval_f1"] and again["eval_exact"] == first["eval_exact"]
    saved = json.loads((tmp_path / "e" / "qa_settings.json").read_text())
    stored = json.loads((output / "qa_settings.json").read_text())
    assert saved["null_score_diff_threshold"] == stored["null_score_diff_threshold"]


@needs_squad
@pytest.mark.slow
def test_predict_abstains_at_the_threshold_saved_with_the_model(smoke_v2_run, tmp_path):
    import predict_qa

    output, _, _ = smoke_v2_run
    run_qa("--model_name_or_path", output, "--do_train", "false", "--threshold_file", "",
           "--bf16", "false", "--output_dir", tmp_path / "e",
           config=ROOT / "tests" / "configs" / "smoke-v2.json")  # fmt: skip
    expected = json.loads((tmp_path / "e" / "predictions.json").read_text())
    heldout = load_squad_file(
        str(ROOT / ".cache" / "squad-v2-split" / "heldout.json"), allow_unanswerable=True
    ).select(range(len(expected)))
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(row) for row in heldout))
    # A copy of the folder whose saved threshold can be changed.
    folder = tmp_path / "model"
    shutil.copytree(output, folder, ignore=shutil.ignore_patterns("runs", "*predictions.json"))

    def answers_with(threshold):
        settings = json.loads((output / "qa_settings.json").read_text())
        if threshold is not None:
            settings["null_score_diff_threshold"] = threshold
        (folder / "qa_settings.json").write_text(json.dumps(settings))
        return {
            q: a.text
            for q, a in predict_qa.main(
                [str(folder), "--file", str(questions), "--bf16", "false"]  # as the evaluation
            ).items()
        }

    assert answers_with(None) == expected  # the stored threshold, as the evaluation used it
    assert "" in expected.values() and set(expected.values()) != {""}
    # Thresholds beyond any score difference (a non-finite one is refused as a broken file).
    assert "" not in answers_with(1e9).values()  # never abstains
    assert set(answers_with(-1e9).values()) == {""}  # always abstains
    # A threshold given on the command line wins over the saved one.
    given = predict_qa.main(
        [str(folder), "--file", str(questions), "--null_score_diff_threshold", "1e9"]
    )
    assert "" not in {a.text for a in given.values()}


@needs_squad
@pytest.mark.slow
@pytest.mark.parametrize("run", COMMITTED_RUNS + STANDIN_RUNS)
def test_committed_v2_predictions_rescore_to_the_reported_numbers(run, tmp_path):
    folder = ROOT / "results" / "runs" / run
    assert folder.is_dir(), f"the committed results {folder} are missing"
    split = tmp_path / "split"
    manifest = qa.data.split.ensure_split(str(split), str(DEV_V2))
    assert json.loads((folder / "split_manifest.json").read_text()) == manifest  # same split
    settings = json.loads((folder / "qa_settings.json").read_text())
    tuned = json.loads((folder / "tune_results.json").read_text())
    assert settings["null_score_diff_threshold"] == tuned["tune_best_f1_thresh"]
    stored = settings["null_score_diff_threshold"]
    # (folder, file prefix, questions, the threshold they were scored at): a training run saves
    # its tuning part as tune_* (tune_results.json), scored before it had a threshold, at 0; a
    # later evaluation of that part (eval_results.json) used the stored one.
    if (folder / "eval-heldout").is_dir():
        parts = [
            (folder / "eval-heldout", "", "heldout.json", stored),
            (folder / "eval-tune", "", "tune.json", stored),
        ]
    else:
        parts = [(folder, "", "heldout.json", stored), (folder, "tune_", "tune.json", 0.0)]
    for files, prefix, refs, threshold in parts:
        key_prefix = prefix or "eval_"
        reported = json.loads((files / f"{key_prefix}results.json").read_text())
        again = rescore(files, split / refs, threshold, prefix=prefix)
        for key in ("exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh"):
            assert again[key] == pytest.approx(reported[f"{key_prefix}{key}"], abs=1e-9), (
                refs,
                key,
            )


# Not the seed-43 run: it drew its samples with its training seed (before samples_seed), five
# questions of its own, on all of which it abstained.
SEED_42_SAMPLES = COMMITTED_RUNS + [run for run in STANDIN_RUNS if not run.endswith("-seed43")]


@pytest.mark.parametrize("run", SEED_42_SAMPLES)
def test_committed_v2_samples_show_an_abstention_and_an_answer(run):
    samples = json.loads((ROOT / "results" / "runs" / run / "samples.json").read_text())
    predictions = [sample["prediction"] for sample in samples]
    assert len(predictions) == 5 and "" in predictions and any(predictions), predictions


@needs_squad
@pytest.mark.slow
@pytest.mark.parametrize(
    "command_file",
    sorted((ROOT / "results" / "runs").glob("*/comparison*-command.json")),
    ids=lambda p: f"{p.parent.name}/{p.name.removesuffix('-command.json')}",
)
def test_the_committed_comparisons_recompute_from_the_committed_predictions(command_file, tmp_path):
    import compare_qa

    table = command_file.with_name(command_file.name.replace("-command.json", ".json"))
    assert table.is_file(), f"{command_file} has no table beside it"
    split = tmp_path / "split"
    qa.data.split.ensure_split(str(split), str(DEV_V2))
    command = json.loads(command_file.read_text())
    models = command["models"]
    result = compare_qa.compare(
        {name: tuple(str(ROOT / f) for f in folders) for name, folders in models.items()},
        str(split / "heldout.json"),
        str(split / "tune.json"),
        command["baseline"],
        command.get("cross_fit", False),
    )
    assert result == json.loads(table.read_text())
    # Each model tuned on the tuning part has the threshold saved with it (beside a training
    # run's predictions, or one folder up from an evaluation's; a run scored on the whole dev
    # set holds both parts' predictions in one folder, beside its settings).
    for name, (heldout_dir, _) in models.items():
        run = ROOT / heldout_dir
        if (
            not (run / "tune_null_odds.json").is_file()
            and (run.parent / "qa_settings.json").is_file()
        ):
            run = run.parent
        saved = json.loads((run / "qa_settings.json").read_text())
        if "threshold_tuned_on" in saved:
            threshold = result["rows"][f"{name}, threshold from the tuning part"]["threshold"]
            assert threshold == saved["null_score_diff_threshold"], name


def test_the_squad_v2_comparison_and_the_controls_are_committed():
    names = {p.parent.name for p in (ROOT / "results" / "runs").glob("*/comparison-command.json")}
    assert {COMMITTED_RUNS[0], "standin-controls"} <= names


@needs_squad
@pytest.mark.slow
def test_the_bert_base_config_runs_on_a_local_folder_in_the_hub_layout(tmp_path):
    """dataset_name goes through datasets.load_dataset as with the Hub's squad_v2; only the
    download (and bert-base itself, swapped for the tiny test model) is left untested."""
    qa.data.split.ensure_split(str(tmp_path / "split"), str(DEV_V2))
    hub = tmp_path / "squad_v2"
    (hub / "squad_v2").mkdir(parents=True)  # the Hub repository's own file layout
    for split, part, count in (("train", "train", 64), ("validation", "heldout", 32)):
        data = load_squad_file(str(tmp_path / "split" / f"{part}.json"), allow_unanswerable=True)
        data.select(range(count)).to_parquet(
            str(hub / "squad_v2" / f"{split}-00000-of-00001.parquet")
        )
    output = tmp_path / "run"
    run_qa("--dataset_name", hub,
           "--max_seq_length", "256", "--doc_stride", "96", "--eval_strategy", "no",
           "--save_strategy", "no", "--report_to", "none", "--output_dir", output,
           config=ROOT / "configs" / "bert-base-squad-v2-20pct.json")  # fmt: skip
    results = json.loads((output / "all_results.json").read_text())
    assert results["train_examples"] == round(64 * 0.2)
    assert results["eval_examples"] == 32 and results["eval_NoAns_total"] > 0
    config = json.loads((output / "run_config.json").read_text())
    assert config["data_arguments"]["dataset_name"] == str(hub)
    assert config["data_arguments"]["version_2_with_negative"] is True


@needs_squad
@pytest.mark.slow
def test_the_v1_articles_outside_dev_v2_are_the_13_unseen_ones():
    document = qa.data.split.articles_outside(str(SQUAD_DIR / "dev-v1.1.json"), str(DEV_V2))
    titles = {a["title"] for a in document["data"]}
    v2_titles = {a["title"] for a in json.loads(DEV_V2.read_text())["data"]}
    assert len(titles) == 13 and not titles & v2_titles
    assert sum(len(p["qas"]) for a in document["data"] for p in a["paragraphs"]) == 4557


def docs_section_table(title: str) -> tuple[str, dict[str, list[str]]]:
    """(text, {row label: cells}) of docs/squad-v2.md's section `title`, rows labelled by seed."""
    section = (ROOT / "docs" / "squad-v2.md").read_text().split(f"## {title}")[1]
    section = section.split("\n## ")[0]
    rows = {
        cells[0]: cells[1:]
        for line in section.splitlines()
        if line.startswith("| ") and "(seed" in line
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    return section, rows


def committed_tables(*names: str) -> dict[str, dict]:
    """The rows of committed comparison tables, by their path under results/runs (no suffix)."""
    runs = ROOT / "results" / "runs"
    return {name: json.loads((runs / f"{name}.json").read_text())["rows"] for name in names}


def both_seeds_metrics(run: str) -> list[dict]:
    """all_results.json of results/runs/<run> (seed 42) and of <run>-seed43."""
    folders = [ROOT / "results" / "runs" / f"{run}{seed}" for seed in ("", "-seed43")]
    return [json.loads((folder / "all_results.json").read_text()) for folder in folders]


def interval_text(row: dict) -> str:
    d = row["vs_baseline"]
    return f"{d['difference']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def test_the_hard_negatives_table_in_the_docs_is_the_committed_comparisons():
    """docs/squad-v2.md's hard-negative rows: each figure read from the committed tables."""
    rows = committed_tables(
        "standin-hard/comparison",
        "standin-hard/comparison-seed43",
        "standin-hard/comparison-vs-other-paragraph",
        "standin-controls/comparison-cross-fit",
    )
    section, docs = docs_section_table("Hard negatives")
    interval = interval_text

    # row label: (model, the table pairing it with the perturbed run of its seed, or None)
    models = {
        "easy negatives (seed 42)": ("other-paragraph", None),
        "perturbed (seed 42)": ("perturbed", None),
        "hard negatives (seed 42)": ("similar-paragraph", "standin-hard/comparison"),
        "perturbed (seed 43)": ("perturbed-seed43", None),
        "hard negatives (seed 43)": ("similar-paragraph-seed43", "standin-hard/comparison-seed43"),
    }
    assert set(docs) == set(models)
    for label, (model, same_seed) in models.items():
        name = f"squad-v2-standin-{model}"
        tuned_key, crossed_key = (
            f"{name}, threshold from the tuning part",
            f"{name}, threshold by leaving its article out",
        )
        tuned = rows["standin-hard/comparison-vs-other-paragraph"][tuned_key]
        crossed = rows["standin-hard/comparison"].get(crossed_key) or rows[
            "standin-controls/comparison-cross-fit"
        ].get(crossed_key)
        expected = [f"{tuned[k]:.2f}" for k in ("f1", "HasAns_f1", "NoAns_f1")] + [
            f"{tuned['null_auc']:.3f}",
            interval(rows[same_seed][tuned_key]) if same_seed else "",
            interval(tuned) if "vs_baseline" in tuned else "",
            f"{crossed['f1']:.2f}",
        ]
        assert docs[label] == expected, label
    # The README's sentence on the two runs: their F1 and their leads, as in the table.
    readme = (ROOT / "README.md").read_text()
    hard = [docs[f"hard negatives (seed {seed})"] for seed in (42, 43)]
    assert f"score {hard[0][0]} and {hard[1][0]}: " in readme
    leads = [[cells[i].split(" [")[0] for cells in hard] for i in (4, 5)]
    assert "{} and {} over the swaps of the same seed".format(*leads[0]) in readme
    assert "{} and {} over a random other paragraph".format(*leads[1]) in readme
    # The two runs' training time, train-steps MFU and peak, as the text below the table says.
    metrics = both_seeds_metrics("standin-hard/squad-v2-standin-similar-paragraph")
    for key, form in (("train_runtime", "{:,.0f}"), ("peak_rss_mib", "{:,}")):
        assert " and ".join(form.format(m[key]) for m in metrics) in section, key
    assert " and ".join(f"{100 * m['train_steps_mfu']:.1f}%" for m in metrics) in section


def test_the_half_each_table_in_the_docs_is_the_committed_comparisons():
    """docs/squad-v2.md's table of both kinds in one budget: each cell read from the committed
    comparisons, and the README's sentence and the prose figures below it from the same files."""
    tables = ("", "-seed43", "-vs-similar-paragraph", "-vs-similar-paragraph-seed43")
    rows = committed_tables(*(f"standin-mixed/comparison{t}" for t in tables))
    rows = {name.removeprefix("standin-mixed/"): table for name, table in rows.items()}
    section, docs = docs_section_table("Both kinds in one budget")

    def interval(table, name):
        return interval_text(rows[table][f"{name}, threshold from the tuning part"])

    labels = {"perturbed": "perturbed", "hard negatives": "similar-paragraph"}
    labels["half each"] = "perturbed-similar"
    assert set(docs) == {f"{label} (seed {seed})" for label in labels for seed in (42, 43)}
    for label, model in labels.items():
        for seed, suffix in ((42, ""), (43, "-seed43")):
            name = f"squad-v2-standin-{model}{suffix}"
            tuned = rows["comparison"][f"{name}, threshold from the tuning part"]
            crossed = rows["comparison"][f"{name}, threshold by leaving its article out"]
            expected = [f"{tuned[k]:.2f}" for k in ("f1", "HasAns_f1", "NoAns_f1")] + [
                f"{tuned['null_auc']:.3f}",
                "" if label == "perturbed" else interval(f"comparison{suffix}", name),
                interval(f"comparison-vs-similar-paragraph{suffix}", name)
                if label == "half each"
                else "",
                f"{crossed['f1']:.2f}",
            ]
            assert docs[f"{label} (seed {seed})"] == expected, (label, seed)
    half = [docs[f"half each (seed {seed})"] for seed in (42, 43)]
    prose = " ".join(section.split())
    assert f"({half[0][0]} and {half[1][0]})" in prose
    assert f"null AUC ({half[0][3]} and {half[1][3]})" in prose
    leads = [[cells[i].split(" [")[0] for cells in half] for i in (4, 5)]
    assert "{} and {} over the swaps of the same seed".format(*leads[0]) in prose
    assert "{} and {} over the hard negatives".format(*leads[1]) in prose
    assert f"article out for the threshold gives {half[0][6]} and {half[1][6]}" in prose
    readme = (ROOT / "README.md").read_text()
    assert f"hard negatives score {half[0][0]} and {half[1][0]}: " in readme
    assert "{} and {} over the swaps of the same seed (no clear".format(*leads[0]) in readme
    metrics = both_seeds_metrics("standin-mixed/squad-v2-standin-perturbed-similar")
    assert f"trained in {metrics[1]['train_runtime']:,.0f} s at a train-steps MFU of " in prose
    assert f"{100 * metrics[1]['train_steps_mfu']:.1f}%" in prose
    assert f"its {metrics[0]['train_runtime']:,.0f} s are no speed figure" in prose
    assert " and ".join(f"{m['peak_rss_mib']:,}" for m in metrics) in prose
