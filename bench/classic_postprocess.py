"""The classic span post-processing, as question-answering examples have long done it.

Per window: the n_best_size highest start logits times the n_best_size highest end logits, each
pair checked in a Python loop (inside the context, end not before start, not too long); the
candidates of all windows sorted by score; for SQuAD 2.0 the lowest null score of the windows
against the best span. Written here from that description as the speed baseline of `make bench`:
it is what users of the classic scripts run. Correctness is judged against the exhaustive loop
in tests/helpers/reference.py, which this one can disagree with (the best valid span need not pair a
top-20 start with a top-20 end).
"""

import numpy as np

from tests.helpers.reference import windows_by_question  # run from the checkout (bench.bench)


def classic_postprocess(
    examples, features, start_logits, end_logits, v2, n_best, max_len, threshold
):
    """{question id: (answer text, its probability among the n-best)}."""
    windows_of = windows_by_question(features["example_id"])
    all_offsets = features["offset_mapping"]
    answers = {}
    for qid, context in zip(examples["id"], examples["context"]):
        candidates, null = [], None
        for f in windows_of[qid]:
            starts, ends, offsets = start_logits[f], end_logits[f], all_offsets[f]
            window_null = starts[0] + ends[0]
            if null is None or window_null < null:
                null = window_null
            top_starts = np.argsort(starts)[-1 : -n_best - 1 : -1].tolist()
            top_ends = np.argsort(ends)[-1 : -n_best - 1 : -1].tolist()
            for s in top_starts:
                for e in top_ends:
                    if s >= len(offsets) or e >= len(offsets):
                        continue
                    if offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_len:
                        continue
                    candidates.append((starts[s] + ends[e], offsets[s][0], offsets[e][1]))
        candidates.sort(key=lambda c: -c[0])
        best = candidates[:n_best]
        text, probability = "", 1.0
        if best:  # the classic scripts also turn the n-best scores into probabilities
            weights = np.exp(np.array([c[0] for c in best]) - best[0][0])
            text, probability = context[best[0][1] : best[0][2]], float(weights[0] / weights.sum())
        if v2 and best and null - best[0][0] > threshold:
            text = ""
        answers[qid] = (text, probability)
    return answers
