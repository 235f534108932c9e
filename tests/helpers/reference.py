"""The plain-loop definition of span post-processing, kept as the reference for the fast path.

Slow on purpose: every (start, end) pair of every window is visited in Python. The tests check
qa/answers/postprocess.py against it on random logits; `make bench` times both on the full dev sets.
"""

import numpy as np


def windows_by_question(example_ids) -> dict[str, list[int]]:
    """The indices of each question's windows, in window order."""
    windows_of = {}
    for window, owner in enumerate(example_ids):
        windows_of.setdefault(owner, []).append(window)
    return windows_of


def reference_postprocess(
    examples, features, start_logits, end_logits, v2, n_best, max_len, threshold
):
    """{question id: (answer text, [((start_char, end_char), score), ...] n-best)}."""
    windows_of = windows_by_question(features["example_id"])
    all_offsets = features["offset_mapping"]
    answers = {}
    for qid, context in zip(examples["id"], examples["context"]):
        best_by_span, null = {}, np.inf
        for f in windows_of[qid]:
            offsets, starts, ends = all_offsets[f], start_logits[f].tolist(), end_logits[f].tolist()
            null = min(null, starts[0] + ends[0])
            for i in range(len(offsets)):
                if offsets[i] is None:
                    continue
                for j in range(i, min(i + max_len, len(offsets))):
                    if offsets[j] is None:
                        continue
                    span, score = (offsets[i][0], offsets[j][1]), starts[i] + ends[j]
                    if score > best_by_span.get(span, -np.inf):
                        best_by_span[span] = score
        ranked = sorted(best_by_span.items(), key=lambda item: (-item[1], item[0]))[:n_best]
        text, best = "", -np.inf
        if ranked:
            (s, e), best = ranked[0]
            text = context[s:e]
        if v2 and null - best > threshold:
            text = ""
        answers[qid] = (text, [(span, round(score, 9)) for span, score in ranked])
    return answers


def mismatched_questions(fast, slow) -> list[str]:
    """Question ids where the fast path's answers (`fast`) differ from the reference's (`slow`)."""
    return [
        qid
        for qid, (text, ranked) in slow.items()
        if fast[qid].text != text
        or [((c.start, c.end), round(c.score, 9)) for c in fast[qid].nbest if c.start >= 0]
        != ranked
    ]
