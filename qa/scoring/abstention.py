"""How well a SQuAD 2.0 model abstains, and whether one model beats another on the same questions.

* null_score_auc: how well the null odds (null score minus best span score, the quantity the
  no-answer threshold cuts) rank unanswerable questions above answerable ones, whatever the
  threshold. 0.5 is chance, 1.0 a perfect ranking.
* paired_article_bootstrap: the difference in F1 between two models on the same questions, with
  a 95% interval from resampling whole articles. Questions of one article share a passage and
  a crowd worker, so they are not independent; resampling articles, not questions, keeps that.
  Pairing (both models scored on each resample) removes what the two have in common, so a
  difference can be clear even when each score's own interval is wide.
"""

import numpy as np

RESAMPLES = 2000


def null_score_auc(null_odds: np.ndarray, has_answer: np.ndarray) -> float:
    """P(odds of an unanswerable question > odds of an answerable one), ties counting half
    (the Mann-Whitney statistic, from average ranks)."""
    odds, has_answer = np.asarray(null_odds, dtype=float), np.asarray(has_answer, dtype=bool)
    positives, negatives = int((~has_answer).sum()), int(has_answer.sum())
    if not positives or not negatives:
        raise ValueError("the AUC needs both answerable and unanswerable questions")
    values, inverse, counts = np.unique(odds, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1  # rank of each distinct value's first copy
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]  # tied values share their mean rank
    rank_sum = ranks[~has_answer].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def paired_article_bootstrap(
    scores: np.ndarray,
    baseline: np.ndarray,
    articles: list[str],
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict:
    """F1 of `scores` minus F1 of `baseline` (per-question values in [0, 1], the same questions in
    the same order), in points, with the 2.5th and 97.5th percentiles over `resamples` draws of
    the articles with replacement. The same seed gives the same interval."""
    scores, baseline = np.asarray(scores, dtype=float), np.asarray(baseline, dtype=float)
    if not (len(scores) == len(baseline) == len(articles)):
        raise ValueError("scores, baseline and articles must cover the same questions")
    names, article = np.unique(np.asarray(articles), return_inverse=True)
    sums = np.bincount(article, weights=scores - baseline, minlength=len(names))
    counts = np.bincount(article, minlength=len(names)).astype(float)
    draws = np.random.default_rng(seed).integers(0, len(names), size=(resamples, len(names)))
    differences = 100.0 * sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.percentile(differences, [2.5, 97.5])
    return {
        "difference": float(100.0 * sums.sum() / counts.sum()),
        "low": float(low),
        "high": float(high),
        "articles": len(names),
        "resamples": resamples,
    }
