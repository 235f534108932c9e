"""Known-answer tests for the offline SQuAD metric in qa/scoring/squad_qa."""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
METRIC_DIR = REPO_ROOT / "qa" / "scoring" / "squad_qa"
SQUAD_DIR = Path(os.environ.get("SQUAD_DIR", REPO_ROOT.parent / "shared" / "squad"))

# The metric script must stay self-contained (evaluate copies it away), so tests load it by path
# rather than through a package import.
_spec = importlib.util.spec_from_file_location("squad_qa", METRIC_DIR / "squad_qa.py")
sq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sq)


def pred(qid, text, na_prob=None):
    p = {"id": qid, "prediction_text": text}
    if na_prob is not None:
        p["no_answer_probability"] = na_prob
    return p


def ref(qid, *texts):
    return {"id": qid, "answers": {"text": list(texts), "answer_start": [0] * len(texts)}}


# --- normalisation and per-answer scores ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The  Cat!", "cat"),
        ("an apple, a day", "apple day"),
        ("U.S.", "us"),
        ("theatre", "theatre"),
        ("A  Tale of\tTwo\nCities.", "tale of two cities"),
        # Punctuation goes first, so "the-end" becomes the word "theend", which keeps its "the".
        ("the-end", "theend"),
        ("(the) answer", "answer"),
        ("", ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert sq.normalize_answer(raw) == expected


def test_f1_by_hand():
    # "big red dog" vs "red dog barked": 2 shared tokens, P = R = 2/3, F1 = 2/3.
    assert sq.f1_score("the big red dog", "a red dog barked") == pytest.approx(2 / 3)
    # Repeated tokens count with multiplicity: "dog dog dog" vs "dog": P = 1/3, R = 1, F1 = 1/2.
    assert sq.f1_score("dog dog dog", "dog") == pytest.approx(0.5)
    assert sq.f1_score("red", "blue") == 0.0
    assert sq.f1_score("The Cat.", "cat") == 1.0


def test_exact_differs_from_f1():
    assert sq.exact_match_score("big red dog", "red dog") == 0
    # P = 2/3, R = 1, F1 = 0.8.
    assert sq.f1_score("big red dog", "red dog") == pytest.approx(0.8)
    assert sq.exact_match_score("The red dog!", "red dog") == 1


def test_max_over_gold_answers():
    exact, f1 = sq.score_question("big red dog", ["cat", "red dog", "red dog barked loudly"])
    assert exact == 0
    assert f1 == pytest.approx(0.8)  # from "red dog"; "red dog barked loudly" gives 4/7
    assert sq.score_question("Cat", ["dog", "the cat"]) == (1, 1.0)


def test_empty_strings_v1_vs_v2():
    # v1.1 has no empty-answer rule: no overlap means F1 0, although the strings are equal.
    assert sq.exact_match_score("", "") == 1
    assert sq.f1_score("", "", version_2_with_negative=False) == 0.0
    assert sq.f1_score("the", "", version_2_with_negative=False) == 0.0
    # v2.0: an empty side scores 1 exactly when both are empty.
    assert sq.f1_score("", "", version_2_with_negative=True) == 1.0
    assert sq.f1_score("the", "", version_2_with_negative=True) == 1.0
    assert sq.f1_score("", "cat", version_2_with_negative=True) == 0.0
    assert sq.f1_score("cat", "", version_2_with_negative=True) == 0.0


def test_gold_answers_per_version():
    assert sq.gold_answers([], version_2_with_negative=True) == [""]
    # v2.0 drops golds that normalise to nothing, as the official script does.
    assert sq.gold_answers(["the", "cat"], version_2_with_negative=True) == ["cat"]
    assert sq.gold_answers(["the", "cat"], version_2_with_negative=False) == ["the", "cat"]


# --- whole-set scoring -----------------------------------------------------------------------


def test_v1_scores():
    preds = [pred("a", "Denver Broncos"), pred("b", "big red dog"), pred("c", "nothing")]
    refs = [ref("a", "the Denver Broncos", "Broncos"), ref("b", "red dog"), ref("c", "something")]
    result = sq.compute_squad(preds, refs)
    assert result == {
        "exact_match": pytest.approx(100 / 3),
        "f1": pytest.approx(100 * 1.8 / 3),
        "total": 3,
    }


def test_v1_rejects_unanswerable_references():
    with pytest.raises(ValueError, match="'b'"):
        sq.compute_squad([pred("a", "x"), pred("b", "")], [ref("a", "x"), ref("b")])


def tiny_v2_set():
    """Two answerable and two unanswerable questions whose scores are worked out by hand.

    raw (exact, f1): q1 (1, 1), q2 (0, 0.8), q3 (0, 0), q4 (1, 1).
    Sweep in na-prob order q4 0.1, q1 0.2, q2 0.6, q3 0.7, starting from 2 (two unanswerable):
      exact: q4 +0 -> 2, q1 +1 -> 3 (best, 0.2), q2 +0 -> 3, q3 -1 -> 2   => 75.0 at 0.2
      f1:    q4 +0 -> 2, q1 +1 -> 3,  q2 +0.8 -> 3.8 (best, 0.6), q3 -1   => 95.0 at 0.6
    """
    preds = [
        pred("q1", "Denver", 0.2),
        pred("q2", "big red dog", 0.6),
        pred("q3", "something", 0.7),
        pred("q4", "", 0.1),
    ]
    refs = [ref("q1", "denver"), ref("q2", "red dog"), ref("q3"), ref("q4")]
    return preds, refs


def test_v2_tiny_set_by_hand():
    preds, refs = tiny_v2_set()
    result = sq.compute_squad(preds, refs, version_2_with_negative=True)
    assert result == pytest.approx(
        {
            "exact": 50.0,
            "f1": 70.0,
            "total": 4,
            "HasAns_exact": 50.0,
            "HasAns_f1": 90.0,
            "HasAns_total": 2,
            "NoAns_exact": 50.0,
            "NoAns_f1": 50.0,
            "NoAns_total": 2,
            "best_exact": 75.0,
            "best_exact_thresh": 0.2,
            "best_f1": 95.0,
            "best_f1_thresh": 0.6,
        }
    )


def test_v2_no_answer_threshold():
    # At 0.5, q2 (answerable) and q3 (unanswerable) count as "no answer": q2 -> 0, q3 -> 1.
    preds, refs = tiny_v2_set()
    result = sq.compute_squad(preds, refs, version_2_with_negative=True, no_answer_threshold=0.5)
    assert result["exact"] == 75.0
    assert result["f1"] == 75.0
    assert result["HasAns_f1"] == 50.0
    assert result["NoAns_exact"] == 100.0
    # best_* sweep the raw predictions, so the threshold does not move them.
    assert result["best_exact"] == 75.0
    assert result["best_f1"] == pytest.approx(95.0)
    assert result["best_f1_thresh"] == 0.6


def test_v2_omits_empty_groups():
    result = sq.compute_squad([pred("a", "x", 0.5)], [ref("a", "x")], version_2_with_negative=True)
    assert "HasAns_total" in result
    assert not any(key.startswith("NoAns_") for key in result)
    result = sq.compute_squad([pred("a", "", 0.5)], [ref("a")], version_2_with_negative=True)
    assert "NoAns_total" in result
    assert not any(key.startswith("HasAns_") for key in result)


def test_best_threshold_ties_follow_prediction_order():
    # Same na-prob: the stable sort keeps prediction order, as the official sweep does.
    refs = [ref("wrong"), ref("right", "cat")]
    wrong_first = [pred("wrong", "dog", 0.5), pred("right", "cat", 0.5)]
    result = sq.compute_squad(wrong_first, refs, version_2_with_negative=True)
    # 1 -> 0 -> 1: never strictly above the start.
    assert (result["best_exact"], result["best_exact_thresh"]) == (50.0, 0.0)
    right_first = wrong_first[::-1]
    result = sq.compute_squad(right_first, refs, version_2_with_negative=True)
    assert (result["best_exact"], result["best_exact_thresh"]) == (100.0, 0.5)


def test_best_threshold_counts_raw_non_empty_prediction():
    # "the" normalises to "" (exact 1 for an unanswerable question) but is not an empty string,
    # so switching it on still costs a point in the sweep, as in the official script.
    result = sq.compute_squad([pred("a", "the", 0.3)], [ref("a")], version_2_with_negative=True)
    assert result["exact"] == 100.0
    assert (result["best_exact"], result["best_exact_thresh"]) == (100.0, 0.0)


def sequential_best_threshold(scores, na_probs, has_answer, answered):
    """The official script's loop, written plainly, to check the vectorised version against."""
    score = best = float(sum(1 for h in has_answer if not h))
    threshold = None
    for i in sorted(range(len(scores)), key=lambda i: na_probs[i]):
        if has_answer[i]:
            score += scores[i]
        elif answered[i]:
            score -= 1
        if score > best:
            best, threshold = score, na_probs[i]
    if threshold is None:  # answering nothing is best: a threshold below every na-prob
        lowest = min(na_probs)
        threshold = 0.0 if lowest > 0 else float(np.nextafter(lowest, -np.inf))
    return 100.0 * best / len(scores), threshold


def test_abstaining_on_all_gives_a_threshold_below_every_score_difference():
    # Null score differences can be negative: 0.0 would answer the first two questions.
    refs = [ref("a"), ref("b"), ref("c")]
    preds = [pred("a", "dog", -3.0), pred("b", "cat", -1.0), pred("c", "cow", 2.0)]
    result = sq.compute_squad(preds, refs, version_2_with_negative=True)
    assert result["best_exact"] == 100.0
    assert result["best_exact_thresh"] < -3.0
    again = sq.compute_squad(
        preds, refs, version_2_with_negative=True, no_answer_threshold=result["best_f1_thresh"]
    )
    assert again["exact"] == again["f1"] == 100.0


@pytest.mark.parametrize("seed", range(20))
def test_best_threshold_matches_sequential_loop(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # A handful of distinct na-probs forces many ties.
    na_probs = rng.choice([0.0, 0.1, 0.25, 0.5, 0.9, 1.0, rng.random()], size=n)
    has_answer = rng.random(n) < 0.5
    answered = rng.random(n) < 0.6
    scores = np.where(rng.random(n) < 0.5, rng.choice([0.0, 1.0], size=n), rng.random(n))
    expected = sequential_best_threshold(
        scores.tolist(), na_probs.tolist(), has_answer.tolist(), answered.tolist()
    )
    assert sq.find_best_threshold(scores, na_probs, has_answer, answered) == expected


# --- id checks -------------------------------------------------------------------------------


def test_prediction_without_reference_raises():
    with pytest.raises(ValueError, match="no reference: 'extra'"):
        sq.compute_squad([pred("a", "x"), pred("extra", "y")], [ref("a", "x")])


def test_reference_without_prediction_raises():
    refs = [ref(f"q{i}", "x") for i in range(8)]
    with pytest.raises(ValueError, match=r"'q1', 'q2', 'q3', 'q4', 'q5' \(and 2 more\)"):
        sq.compute_squad([pred("q0", "x")], refs)


def test_duplicate_prediction_ids_raise():
    with pytest.raises(ValueError, match="Duplicate ids in predictions: 'a'"):
        sq.compute_squad([pred("a", "x"), pred("b", "y"), pred("a", "z")], [ref("a"), ref("b")])


# --- through evaluate ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metric():
    evaluate = pytest.importorskip("evaluate")
    return evaluate.load(str(METRIC_DIR))


def test_evaluate_load_matches_direct_v2(metric):
    preds, refs = tiny_v2_set()
    for threshold in (1.0, 0.5):
        kwargs = {"version_2_with_negative": True, "no_answer_threshold": threshold}
        via_evaluate = metric.compute(predictions=preds, references=refs, **kwargs)
        assert via_evaluate == sq.compute_squad(preds, refs, **kwargs)


def test_evaluate_load_v1_without_na_prob(metric):
    preds = [pred("a", "the big red dog"), pred("b", "cat")]
    refs = [ref("a", "a red dog barked"), ref("b", "Cat", "dog")]
    result = metric.compute(predictions=preds, references=refs)
    assert result == sq.compute_squad(preds, refs)
    assert result == {"exact_match": 50.0, "f1": pytest.approx(100 * (2 / 3 + 1) / 2), "total": 2}


def test_evaluate_add_batch_fills_missing_na_prob(metric):
    preds, refs = tiny_v2_set()
    metric.add_batch(predictions=[pred("q1", "Denver")], references=refs[:1])
    metric.add(prediction=preds[1], reference=refs[1])
    result = metric.compute(
        predictions=preds[2:], references=refs[2:], version_2_with_negative=True
    )
    expected_preds = [pred("q1", "Denver", 0.0)] + preds[1:]
    assert result == sq.compute_squad(expected_preds, refs, version_2_with_negative=True)


def test_evaluate_reports_mismatched_ids(metric):
    # evaluate itself rejects batches of unequal length, so the lengths here agree.
    with pytest.raises(ValueError, match="no reference: 'c'"):
        metric.compute(
            predictions=[pred("a", "x"), pred("c", "y")], references=[ref("a", "x"), ref("b", "y")]
        )
    # A failed compute leaves the module usable.
    result = metric.compute(predictions=[pred("a", "x")], references=[ref("a", "x")])
    assert result["exact_match"] == 100.0


# --- real SQuAD dev sets ---------------------------------------------------------------------


def load_references(name, folder=SQUAD_DIR):
    path = folder / name
    if not path.is_file():
        pytest.skip(f"{path} not found; set SQUAD_DIR to the folder holding the SQuAD json files")
    with path.open(encoding="utf-8") as f:
        data = json.load(f)["data"]
    return [
        {
            "id": qa["id"],
            "answers": {
                "text": [a["text"] for a in qa["answers"]],
                "answer_start": [a["answer_start"] for a in qa["answers"]],
            },
        }
        for article in data
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


@pytest.fixture(scope="module")
def dev_v2():
    return load_references("dev-v2.0.json")


@pytest.mark.parametrize("na_prob", [0.0, 1.0])
@pytest.mark.slow
def test_dev_v2_all_empty_floor(dev_v2, na_prob):
    preds = [pred(r["id"], "", na_prob) for r in dev_v2]
    result = sq.compute_squad(preds, dev_v2, version_2_with_negative=True)
    # 5945 of the 11873 questions are unanswerable.
    assert round(result["exact"], 2) == round(result["f1"], 2) == 50.07
    assert result["total"] == 11873
    assert result["HasAns_exact"] == 0.0
    assert result["NoAns_exact"] == 100.0
    assert (result["HasAns_total"], result["NoAns_total"]) == (5928, 5945)


@pytest.mark.slow
def test_dev_v2_first_gold_answer_is_perfect(dev_v2):
    preds = [pred(r["id"], (r["answers"]["text"] or [""])[0], 0.0) for r in dev_v2]
    result = sq.compute_squad(preds, dev_v2, version_2_with_negative=True)
    assert result["exact"] == result["f1"] == 100.0
    assert result["best_exact"] == result["best_f1"] == 100.0


@pytest.mark.slow
def test_dev_v2_through_evaluate(metric, dev_v2):
    preds = [pred(r["id"], "", 1.0) for r in dev_v2]
    result = metric.compute(predictions=preds, references=dev_v2, version_2_with_negative=True)
    assert round(result["exact"], 2) == 50.07


@pytest.mark.slow
def test_dev_v1_first_gold_answer_is_perfect():
    refs = load_references("dev-v1.1.json")
    preds = [pred(r["id"], r["answers"]["text"][0]) for r in refs]
    result = sq.compute_squad(preds, refs)
    assert result == {"exact_match": 100.0, "f1": 100.0, "total": 10570}


@pytest.mark.parametrize("name", ["squad-v1.1-tiny.json", "squad-v2.0-tiny.json"])
def test_tiny_fixture_first_gold_answers_are_perfect(name):
    refs = load_references(name, REPO_ROOT / "tests" / "fixtures")
    v2 = "v2.0" in name
    preds = [pred(r["id"], (r["answers"]["text"] or [""])[0], 0.0 if v2 else None) for r in refs]
    result = sq.compute_squad(preds, refs, version_2_with_negative=v2)
    assert result["exact" if v2 else "exact_match"] == result["f1"] == 100.0
