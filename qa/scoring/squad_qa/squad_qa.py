"""Offline SQuAD v1.1 / v2.0 scoring as an `evaluate` metric.

Load it from its folder, without the Hugging Face Hub::

    metric = evaluate.load("qa/scoring/squad_qa")
    metric.compute(predictions=preds, references=refs, version_2_with_negative=True)

Inputs (the same layout as the Hub's ``squad_v2`` metric):

* ``predictions``: ``{"id": str, "prediction_text": str, "no_answer_probability": float}``.
  ``no_answer_probability`` may be left out; it then counts as 0.0. evaluate checks each input
  against a fixed schema and rejects dicts with missing keys, so ``SquadQA.add``/``add_batch``
  fill the default in before the schema check. It is stored as float64 so that thresholds
  come back exactly as given. v1.1 mode ignores it.
* ``references``: ``{"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}``;
  an empty ``text`` list marks an unanswerable question (v2.0 only).

Scoring follows the official evaluation scripts:

* v1.1 (``version_2_with_negative=False``, the default): keys ``exact_match``, ``f1``, ``total``.
  Token F1 has no special case for empty strings (no overlap gives 0).
* v2.0: keys ``exact``, ``f1``, ``total``, ``HasAns_exact``, ``HasAns_f1``, ``HasAns_total``,
  ``NoAns_exact``, ``NoAns_f1``, ``NoAns_total`` (a group with no questions is left out),
  ``best_exact``, ``best_exact_thresh``, ``best_f1``, ``best_f1_thresh``. A prediction whose
  ``no_answer_probability`` is above ``no_answer_threshold`` (default 1.0) counts as "no answer"
  for the main scores; the ``best_*`` scores sweep that threshold over the raw predictions.
  As in the official v2.0 script, gold answers that normalise to "" are dropped and a question
  left without gold answers is scored against [""]; whether a question is answerable depends
  only on its raw answer list.

Scores are percentages (0-100). Ids must match one to one between predictions and references;
otherwise a ValueError names the offending ids (the official scripts only warn and skip).

The pure functions (``normalize_answer``, ``f1_score``, ``compute_squad``, ...) import nothing
from the project, because evaluate copies this file into its module cache on load.
"""

import collections
import re
import string

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{rajpurkar-etal-2016-squad,
  title = {{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text},
  author = {Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle = {Proceedings of EMNLP},
  year = {2016},
}
@inproceedings{rajpurkar-etal-2018-know,
  title = {Know What You Don't Know: Unanswerable Questions for {SQ}u{AD}},
  author = {Rajpurkar, Pranav and Jia, Robin and Liang, Percy},
  booktitle = {Proceedings of ACL},
  year = {2018},
}
"""

_DESCRIPTION = """\
Exact match and token-level F1 for extractive question answering, scored the way the official
SQuAD v1.1 and v2.0 evaluation scripts score them, usable without network access.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id", "prediction_text", "no_answer_probability" (optional, 0.0)}.
    references: list of {"id", "answers": {"text": [...], "answer_start": [...]}}.
    version_2_with_negative: score as SQuAD v2.0 (unanswerable questions allowed). Default False.
    no_answer_threshold: v2.0 only; predictions with no_answer_probability above it count as
        "no answer". Default 1.0.
Returns:
    v1.1: exact_match, f1, total.
    v2.0: exact, f1, total, HasAns_*/NoAns_* (exact, f1, total), best_exact, best_exact_thresh,
        best_f1, best_f1_thresh.
Examples:
    >>> metric = evaluate.load("qa/scoring/squad_qa")
    >>> metric.compute(
    ...     predictions=[{"id": "q1", "prediction_text": "1976"}],
    ...     references=[{"id": "q1", "answers": {"text": ["1976"], "answer_start": [97]}}],
    ... )
    {'exact_match': 100.0, 'f1': 100.0, 'total': 1}
"""

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
_MAX_IDS_SHOWN = 5


def normalize_answer(text: str) -> str:
    """Lower-case, strip punctuation, drop the articles a/an/the, collapse white space."""
    text = text.lower()
    # The official order: punctuation goes first, so "the-end" is one word, "theend", and keeps
    # its letters; removing articles first would leave "end".
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str, version_2_with_negative: bool = False) -> float:
    """Token F1 on normalised text, with the empty-answer rule of the chosen SQuAD version."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    # v2.0 must reward an empty prediction for an unanswerable question; v1.1 never needed to.
    if version_2_with_negative and (not pred_tokens or not gold_tokens):
        return float(pred_tokens == gold_tokens)
    overlap = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(texts: list[str], version_2_with_negative: bool = False) -> list[str]:
    """The gold strings a prediction is compared with, as each official script builds them."""
    if not version_2_with_negative:
        return list(texts)
    kept = [text for text in texts if normalize_answer(text)]
    return kept or [""]


def score_question(
    prediction: str, golds: list[str], version_2_with_negative: bool = False
) -> tuple[int, float]:
    """(exact, f1) for one question: the best over its gold answers."""
    exact = max(exact_match_score(prediction, gold) for gold in golds)
    f1 = max(f1_score(prediction, gold, version_2_with_negative) for gold in golds)
    return exact, f1


def apply_no_answer_threshold(
    scores: np.ndarray, na_probs: np.ndarray, has_answer: np.ndarray, threshold: float
) -> np.ndarray:
    """Replace the scores of questions predicted unanswerable (na-prob > threshold).

    Like the official script, such a question scores 1 if it is unanswerable and 0 otherwise,
    without re-scoring "" against the gold answers.
    """
    return np.where(na_probs > threshold, (~has_answer).astype(float), scores)


def abstain_on_all(na_probs: np.ndarray) -> float:
    """The threshold when answering nothing scores best. The official script says 0.0, which
    abstains on every question only if every na-prob is positive (probabilities); for scores of
    any sign (null score differences) it must lie below the smallest."""
    lowest = float(na_probs.min())
    return 0.0 if lowest > 0.0 else float(np.nextafter(lowest, -np.inf))


def find_best_threshold(
    scores: np.ndarray, na_probs: np.ndarray, has_answer: np.ndarray, answered: np.ndarray
) -> tuple[float, float]:
    """Best percentage score over all no-answer thresholds, and the threshold reaching it.

    Sequential definition (official script): start from "everything unanswered", which earns
    one point per unanswerable question, then switch questions on in order of increasing
    na-prob (stable for ties). Switching on an answerable question adds its raw score, an
    unanswerable one with a non-empty raw prediction costs a point. The first strictly best
    running total wins; its threshold is the na-prob of the question just switched on.
    ``answered`` is whether the raw prediction string is non-empty (not normalised).
    """
    order = np.argsort(na_probs, kind="stable")
    gains = np.where(has_answer, scores, np.where(answered, -1.0, 0.0))[order]
    start = float(np.count_nonzero(~has_answer))
    # Putting the start value first makes cumsum add in the same order as the sequential loop,
    # so the float totals (and hence tie-breaks) match it bit for bit.
    totals = np.cumsum(np.concatenate(([start], gains)))
    best = int(np.argmax(totals))  # argmax returns the first maximum, as a strict ">" update does
    threshold = float(na_probs[order[best - 1]]) if best else abstain_on_all(na_probs)
    return 100.0 * float(totals[best]) / len(scores), threshold


def _describe_ids(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_MAX_IDS_SHOWN])
    more = len(ids) - _MAX_IDS_SHOWN
    return f"{shown} (and {more} more)" if more > 0 else shown


def _duplicates(ids: list[str]) -> list[str]:
    return [i for i, count in collections.Counter(ids).items() if count > 1]


def _check_ids(pred_ids: list[str], ref_ids: list[str]) -> None:
    for name, ids in (("predictions", pred_ids), ("references", ref_ids)):
        dupes = _duplicates(ids)
        if dupes:
            raise ValueError(f"Duplicate ids in {name}: {_describe_ids(dupes)}")
    ref_set = set(ref_ids)
    pred_set = set(pred_ids)
    unknown = [i for i in pred_ids if i not in ref_set]
    if unknown:
        raise ValueError(
            f"{len(unknown)} prediction ids have no reference: {_describe_ids(unknown)}"
        )
    missing = [i for i in ref_ids if i not in pred_set]
    if missing:
        raise ValueError(
            f"{len(missing)} reference ids have no prediction: {_describe_ids(missing)}"
        )


def _percent(values: np.ndarray) -> float:
    # Plain left-to-right sum, as the official scripts add up, rather than numpy's pairwise sum.
    return 100.0 * sum(values.tolist()) / len(values)


def _na_prob(prediction: dict) -> float:
    # None is what the Arrow round trip gives back for a value that was never set.
    value = prediction.get("no_answer_probability")
    return 0.0 if value is None else float(value)


def _with_default_na_prob(predictions):
    if not isinstance(predictions, (list, tuple)):
        return predictions
    return [
        {**p, "no_answer_probability": 0.0}
        if isinstance(p, dict) and "no_answer_probability" not in p
        else p
        for p in predictions
    ]


def compute_squad(
    predictions: list[dict],
    references: list[dict],
    version_2_with_negative: bool = False,
    no_answer_threshold: float = 1.0,
) -> dict:
    """Score predictions against references; see the module docstring for formats and keys."""
    pred_ids = [p["id"] for p in predictions]
    ref_ids = [r["id"] for r in references]
    _check_ids(pred_ids, ref_ids)
    if not references:
        raise ValueError("No questions to score.")

    answers_by_id = {r["id"]: list(r["answers"]["text"]) for r in references}
    if not version_2_with_negative:
        unanswerable = [i for i in ref_ids if not answers_by_id[i]]
        if unanswerable:
            raise ValueError(
                "References without answers need version_2_with_negative=True: "
                + _describe_ids(unanswerable)
            )

    # Prediction order decides ties in the best-threshold sweep, as the official na-prob file
    # (written alongside the predictions) does.
    texts = [p["prediction_text"] for p in predictions]
    raw = [
        score_question(
            text, gold_answers(answers_by_id[i], version_2_with_negative), version_2_with_negative
        )
        for i, text in zip(pred_ids, texts)
    ]
    exact_raw = np.array([e for e, _ in raw], dtype=float)
    f1_raw = np.array([f for _, f in raw], dtype=float)

    if not version_2_with_negative:
        return {"exact_match": _percent(exact_raw), "f1": _percent(f1_raw), "total": len(raw)}

    na_probs = np.array([_na_prob(p) for p in predictions], dtype=float)
    has_answer = np.array([bool(answers_by_id[i]) for i in pred_ids])
    exact = apply_no_answer_threshold(exact_raw, na_probs, has_answer, no_answer_threshold)
    f1 = apply_no_answer_threshold(f1_raw, na_probs, has_answer, no_answer_threshold)

    result = {"exact": _percent(exact), "f1": _percent(f1), "total": len(raw)}
    for prefix, mask in (("HasAns", has_answer), ("NoAns", ~has_answer)):
        if mask.any():
            result[f"{prefix}_exact"] = _percent(exact[mask])
            result[f"{prefix}_f1"] = _percent(f1[mask])
            result[f"{prefix}_total"] = int(mask.sum())

    answered = np.array([bool(text) for text in texts])
    for key, scores in (("exact", exact_raw), ("f1", f1_raw)):
        best, threshold = find_best_threshold(scores, na_probs, has_answer, answered)
        result[f"best_{key}"] = best
        result[f"best_{key}_thresh"] = threshold
    return result


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SquadQA(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {
                        "id": datasets.Value("string"),
                        "prediction_text": datasets.Value("string"),
                        "no_answer_probability": datasets.Value("float64"),
                    },
                    "references": {
                        "id": datasets.Value("string"),
                        "answers": datasets.Sequence(
                            {
                                "text": datasets.Value("string"),
                                "answer_start": datasets.Value("int32"),
                            }
                        ),
                    },
                }
            ),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    # evaluate appends the inputs description to these docstrings, so they must exist.
    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch; predictions lacking "no_answer_probability" get 0.0."""
        predictions = _with_default_na_prob(predictions)
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one example; a prediction lacking "no_answer_probability" gets 0.0."""
        if isinstance(prediction, dict) and "no_answer_probability" not in prediction:
            prediction = {**prediction, "no_answer_probability": 0.0}
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(
        self, predictions, references, version_2_with_negative=False, no_answer_threshold=1.0
    ):
        return compute_squad(
            predictions,
            references,
            version_2_with_negative=version_2_with_negative,
            no_answer_threshold=no_answer_threshold,
        )
