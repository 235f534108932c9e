"""Known answers and brute-force references for the abstention measures (qa/scoring/abstention.py) and
for the per-question F1 that the paired comparison resamples (tools/compare_qa.py)."""

import itertools
import json
import shutil

import numpy as np
import pytest

from qa.scoring.abstention import null_score_auc, paired_article_bootstrap


def pairwise_auc(odds, has_answer):
    """The definition, pair by pair: an unanswerable question above an answerable one scores 1,
    a tie 1/2."""
    wins = [
        1.0 if u > a else 0.5 if u == a else 0.0
        for u, a in itertools.product(odds[~has_answer], odds[has_answer])
    ]
    return sum(wins) / len(wins)


def test_the_auc_of_a_perfect_a_reversed_and_a_tied_ranking():
    has_answer = np.array([True, True, False, False])
    assert null_score_auc([-3.0, -2.0, 1.0, 4.0], has_answer) == 1.0
    assert null_score_auc([4.0, 1.0, -2.0, -3.0], has_answer) == 0.0
    assert null_score_auc([0.5, 0.5, 0.5, 0.5], has_answer) == 0.5
    # One unanswerable question above both answerable ones, the other below one of them: 3 of 4.
    assert null_score_auc([0.0, 2.0, 1.0, 3.0], has_answer) == 0.75


@pytest.mark.parametrize("seed", range(20))
def test_the_auc_matches_the_pairwise_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2, 60))
    odds = rng.integers(-5, 6, size=size).astype(float)  # few values: many ties
    has_answer = rng.random(size) < 0.5
    has_answer[0], has_answer[1] = True, False  # both kinds present
    assert null_score_auc(odds, has_answer) == pytest.approx(pairwise_auc(odds, has_answer))


def test_the_auc_needs_both_kinds_of_question():
    with pytest.raises(ValueError, match="both answerable and unanswerable"):
        null_score_auc([1.0, 2.0], np.array([True, True]))


def loop_bootstrap(scores, baseline, articles, resamples, seed):
    """The same resampling, article by article in Python, from the same random draws."""
    names = sorted(set(articles))
    draws = np.random.default_rng(seed).integers(0, len(names), size=(resamples, len(names)))
    out = []
    for draw in draws:
        chosen = [i for a in draw for i, art in enumerate(articles) if art == names[a]]
        out.append(100.0 * sum(scores[i] - baseline[i] for i in chosen) / len(chosen))
    return np.percentile(out, [2.5, 97.5])


def test_the_bootstrap_matches_a_loop_over_articles_and_repeats_with_its_seed():
    rng = np.random.default_rng(7)
    articles = [f"article {i % 5}" for i in range(40)]
    scores, baseline = rng.random(40), rng.random(40)
    paired = paired_article_bootstrap(scores, baseline, articles, resamples=300, seed=3)
    low, high = loop_bootstrap(scores, baseline, articles, 300, 3)
    assert (paired["low"], paired["high"]) == pytest.approx((low, high))
    assert paired["difference"] == pytest.approx(100.0 * (scores - baseline).mean())
    assert paired["articles"] == 5 and paired["low"] <= paired["difference"] <= paired["high"]
    assert paired == paired_article_bootstrap(scores, baseline, articles, resamples=300, seed=3)


def test_the_bootstrap_of_a_model_against_itself_or_a_constant_shift_has_no_width():
    articles = ["a", "a", "b", "c", "c", "c"]
    scores = np.array([1.0, 0.0, 0.5, 1.0, 0.25, 0.0])
    same = paired_article_bootstrap(scores, scores, articles)
    assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    shifted = paired_article_bootstrap(scores, scores - 0.1, articles)
    assert shifted["low"] == pytest.approx(10.0) and shifted["high"] == pytest.approx(10.0)


def test_the_bootstrap_refuses_scores_of_other_questions():
    with pytest.raises(ValueError, match="same questions"):
        paired_article_bootstrap([1.0, 0.0], [1.0], ["a", "b"])


def test_per_question_f1_averages_to_the_official_f1_at_a_threshold():
    import compare_qa

    refs = [
        {"id": "a", "answers": {"text": ["Denver Broncos"], "answer_start": [0]}, "title": "x"},
        {"id": "b", "answers": {"text": ["in 1990", "1990"], "answer_start": [0, 3]}, "title": "x"},
        {"id": "c", "answers": {"text": [], "answer_start": []}, "title": "y"},
        {"id": "d", "answers": {"text": [], "answer_start": []}, "title": "y"},
        {"id": "e", "answers": {"text": ["the red fox"], "answer_start": [0]}, "title": "z"},
    ]
    spans = {"a": "the Denver Broncos", "b": "1990 season", "c": "something", "d": "x", "e": "fox"}
    odds = {"a": -2.0, "b": 0.5, "c": 3.0, "d": -1.0, "e": 1.5}
    for threshold in (-3.0, 0.0, 1.0, 2.0, 5.0):
        per_question = compare_qa.question_f1(spans, odds, refs, threshold)
        official = compare_qa.score(spans, odds, refs, threshold)["f1"]
        assert 100.0 * per_question.mean() == pytest.approx(official)
    # At 1.0: a answered (1), b answered (F1 2/3), c abstains (1), d answers wrongly (0), e
    # abstains on an answerable question (0).
    assert compare_qa.question_f1(spans, odds, refs, 1.0) == pytest.approx([1, 2 / 3, 1, 0, 0])


def squad_file(path, questions, titles=("article 0", "article 1")):
    """A SQuAD 2.0 file of one paragraph per (id, question, answers), the articles in turn."""
    context = "The Denver Broncos won in 1990 and the red fox ran."
    data = [
        {
            "title": titles[i % len(titles)],
            "paragraphs": [
                {
                    "context": context,
                    "qas": [
                        {
                            "id": qid,
                            "question": "What?",
                            "is_impossible": not answers,
                            "answers": [
                                {"text": a, "answer_start": context.index(a)} for a in answers
                            ],
                        }
                    ],
                }
            ],
        }
        for i, (qid, answers) in enumerate(questions)
    ]
    path.write_text(json.dumps({"version": "v2.0", "data": data}))
    return str(path)


def test_a_training_runs_folder_serves_alone_with_its_tune_files(tmp_path):
    """compare reads the tuning part of a `--results_dir` folder from its tune_* files: the same
    result as the two parts given as two folders."""
    import compare_qa

    heldout = squad_file(
        tmp_path / "heldout.json",
        [("h1", ["Denver Broncos"]), ("h2", []), ("h3", ["red fox"]), ("h4", [])],
    )
    tune = squad_file(tmp_path / "tune.json", [("t1", ["1990"]), ("t2", []), ("t3", [])])
    run, tune_only = tmp_path / "run", tmp_path / "tune-only"
    run.mkdir(), tune_only.mkdir()
    files = {
        "span_predictions.json": {"h1": "Denver Broncos", "h2": "fox", "h3": "1990", "h4": "ran"},
        "null_odds.json": {"h1": -3.0, "h2": 1.0, "h3": -0.5, "h4": -2.0},
        "tune_span_predictions.json": {"t1": "1990", "t2": "won", "t3": "fox"},
        "tune_null_odds.json": {"t1": -1.0, "t2": 0.5, "t3": -0.2},
    }
    for name, content in files.items():
        (run / name).write_text(json.dumps(content))
        if name.startswith("tune_"):
            (tune_only / name.removeprefix("tune_")).write_text(json.dumps(content))
    alone = compare_qa.compare({"m": (str(run), str(run))}, heldout, tune)
    apart = compare_qa.compare({"m": (str(run), str(tune_only))}, heldout, tune)
    assert alone == apart
    # Tuned on t1-t3: best where t1 answers and t2, t3 abstain, i.e. at t1's odds (no answer
    # above -1.0); the tune_ files were read, not the held-out ones (whose odds have no -1.0).
    assert alone["rows"]["m, threshold from the tuning part"]["threshold"] == -1.0


def test_cross_fitting_scores_each_held_out_article_at_a_threshold_tuned_without_it(tmp_path):
    """--cross_fit: each held-out article is scored at the official best threshold of every other
    question of both parts (computed here through the official scorer, article by article), and
    its own odds never move its threshold."""
    import compare_qa

    answers = [["Denver Broncos"], [], ["red fox"], [], ["1990"], [], ["red fox"], []]
    held = [(f"h{i}", a) for i, a in enumerate(answers)]
    heldout = squad_file(tmp_path / "heldout.json", held, ("A", "B", "C"))
    tune = squad_file(tmp_path / "tune.json", [("t1", ["1990"]), ("t2", []), ("t3", [])], ("T",))
    spans = ["Denver Broncos", "fox", "red", "ran", "1990", "won", "fox", "1990"]
    odds = [-3.0, 1.0, -0.5, -2.0, 0.2, -1.5, 0.4, 2.0]
    run = tmp_path / "run"
    run.mkdir()
    files = {
        "span_predictions.json": {f"h{i}": s for i, s in enumerate(spans)},
        "null_odds.json": {f"h{i}": o for i, o in enumerate(odds)},
        "tune_span_predictions.json": {"t1": "1990", "t2": "won", "t3": "fox"},
        "tune_null_odds.json": {"t1": -1.0, "t2": 0.5, "t3": -0.2},
    }
    for name, content in files.items():
        (run / name).write_text(json.dumps(content))

    def fitted(folder):
        result = compare_qa.compare(
            {"m": (str(folder), str(folder))}, heldout, tune, cross_fit=True
        )
        return result["rows"]["m, threshold by leaving its article out"]

    row = fitted(run)
    all_spans = {**files["span_predictions.json"], **files["tune_span_predictions.json"]}
    all_odds = {**files["null_odds.json"], **files["tune_null_odds.json"]}
    refs = compare_qa.references(tune) + compare_qa.references(heldout)
    f1_sum = 0.0
    for title in ("A", "B", "C"):
        rest = [r for r in refs if r["title"] != title]
        own = [r for r in refs if r["title"] == title]
        threshold = compare_qa.score(all_spans, all_odds, rest, 0.0)["best_f1_thresh"]
        assert row["thresholds"][title] == threshold
        f1_sum += compare_qa.score(all_spans, all_odds, own, threshold)["f1"] * len(own)
    assert row["f1"] == pytest.approx(f1_sum / len(held))
    tuned = compare_qa.compare({"m": (str(run), str(run))}, heldout, tune)["rows"]
    gain = row["f1"] - tuned["m, threshold from the tuning part"]["f1"]
    assert row["vs_tuning_part"]["difference"] == pytest.approx(gain)
    # Article A's own odds pushed anywhere: A's threshold stays, those of B and C may move.
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    shifted = {**files["null_odds.json"], "h0": 5.0, "h3": -9.0, "h6": 9.0}
    (moved / "null_odds.json").write_text(json.dumps(shifted))
    assert fitted(moved)["thresholds"]["A"] == row["thresholds"]["A"]
    # Paired with a baseline on the same rule: the difference is that of the two rows.
    both = compare_qa.compare(
        {"m": (str(run), str(run)), "n": (str(moved), str(moved))}, heldout, tune, "m", True
    )["rows"]
    rule = "threshold by leaving its article out"
    difference = both[f"n, {rule}"]["f1"] - both[f"m, {rule}"]["f1"]
    assert both[f"n, {rule}"]["vs_baseline"]["difference"] == pytest.approx(difference)
