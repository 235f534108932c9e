"""Post-processing: from start/end logits over windows to one answer span per question.

For every window, every span (start <= end, at most `max_answer_length` tokens, both ends on
context tokens) is scored as start_logit + end_logit with array operations over a band of
(start, length) pairs, rather than by looping over pairs in Python. The best spans of all windows
of a question are merged, de-duplicated by character span, and turned into an n-best list with
probabilities (a softmax over the n-best scores). For SQuAD 2.0 the null answer ([CLS], the
lowest null score over the windows, as in the original BERT code) competes with the best span.
"""

from dataclasses import dataclass, field

import numpy as np

NO_SPAN = -1  # offset value of tokens that cannot be part of an answer
FEATURE_CHUNK = 512  # windows scored at once; bounds memory at chunk * length * max_answer_length


@dataclass(slots=True)
class Candidate:
    text: str
    score: float
    start: int  # character offsets into the context; -1 for the null answer
    end: int
    probability: float = 0.0


@dataclass(slots=True)
class QuestionPrediction:
    text: str
    probability: float
    start: int
    end: int
    nbest: list[Candidate] = field(default_factory=list)
    no_answer_probability: float = 0.0
    null_score_diff: float = 0.0  # null score minus best span score; > threshold means no answer


def column(dataset, name: str) -> list:
    """A whole column as a Python list, read through Arrow (row-by-row access is slow)."""
    return dataset.with_format("arrow")[name].to_pylist()


def offsets_to_array(features, length: int) -> np.ndarray:
    """(windows, length, 2) character offsets; NO_SPAN where a token is not context.

    Built from the Arrow column in a few array operations: this runs on every evaluation.
    """
    windows = features.with_format("arrow")["offset_mapping"].combine_chunks()
    tokens = windows.flatten()  # one entry per token: [start, end], or null off the context
    counts = np.diff(windows.offsets.to_numpy())
    spans = np.full((len(tokens), 2), NO_SPAN, dtype=np.int32)
    spans[tokens.is_valid().to_numpy(zero_copy_only=False)] = (
        tokens.flatten().to_numpy().reshape(-1, 2)
    )
    rows = np.repeat(np.arange(len(windows)), counts)
    columns = np.arange(len(tokens)) - np.repeat(windows.offsets.to_numpy()[:-1], counts)
    keep = columns < length
    array = np.full((len(windows), length, 2), NO_SPAN, dtype=np.int32)
    array[rows[keep], columns[keep]] = spans[keep]
    return array


def best_spans_per_window(start_logits, end_logits, offsets, max_answer_length, top_k):
    """Top-k valid spans of each window: (scores, start tokens, end tokens), each (windows, k).

    Invalid slots (fewer than k valid spans) have score -inf.
    """
    windows, length = start_logits.shape
    is_context = offsets[:, :, 0] != NO_SPAN
    width = max_answer_length  # span lengths 1..max_answer_length as end = start + 0..width-1
    # Invalid ends (off the context, past the window) score -inf, so one sum masks everything.
    end_scores = np.where(is_context, end_logits, -np.inf)
    pad_end = np.concatenate([end_scores, np.full((windows, width - 1), -np.inf)], axis=1)
    # band[w, i, k] = end score of token i + k: a strided view, nothing copied
    band = np.lib.stride_tricks.sliding_window_view(pad_end, width, axis=1)
    start_scores = np.where(is_context, start_logits, -np.inf)
    scores = (start_scores[:, :, None] + band).reshape(windows, -1)
    k = min(top_k, scores.shape[1])
    # The k best of each row; equal scores are settled by position (earlier start, then earlier
    # end) so that ties give the same answer as the plain-loop definition.
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    above = scores > kth
    tied = scores == kth
    wanted = (k - above.sum(axis=1, keepdims=True)) >= np.cumsum(tied, axis=1)
    top = np.nonzero(above | (tied & wanted))[1].reshape(windows, k)  # ascending positions
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")  # stable: position breaks ties
    top = np.take_along_axis(top, order, axis=1)
    starts, offsets_k = np.divmod(top, width)
    return np.take_along_axis(top_scores, order, axis=1), starts, starts + offsets_k


def softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


def postprocess_qa_predictions(
    examples,
    features,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    version_2_with_negative: bool = False,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
) -> dict[str, QuestionPrediction]:
    """One prediction per question of `examples`, from the logits of its `features` (windows).

    `start_logits`/`end_logits` are (windows, length) in the order of `features`; positions past
    a window's own length may hold anything (the Trainer pads them with -100).
    """
    if len(features) != start_logits.shape[0]:
        raise ValueError(
            f"Got logits for {start_logits.shape[0]} windows but {len(features)} features: "
            "the predictions do not belong to these features."
        )
    length = start_logits.shape[1]
    windows_of = {}
    for index, example_id in enumerate(column(features, "example_id")):
        windows_of.setdefault(example_id, []).append(index)

    all_offsets = offsets_to_array(features, length)
    # Windows of similar length are scored together, each chunk only as wide as its longest.
    window_lengths = (all_offsets[:, :, 0] != NO_SPAN).cumsum(axis=1).argmax(axis=1) + 1
    by_length = np.argsort(window_lengths, kind="stable")
    spans = [None] * len(features)
    for lo in range(0, len(features), FEATURE_CHUNK):
        chunk = by_length[lo : lo + FEATURE_CHUNK]
        width = int(window_lengths[chunk].max())
        offsets = all_offsets[chunk, :width]
        scores, starts, ends = best_spans_per_window(
            start_logits[chunk, :width].astype(np.float64),
            end_logits[chunk, :width].astype(np.float64),
            offsets,
            max_answer_length,
            n_best_size,
        )
        rows = np.arange(len(chunk))[:, None]
        start_chars = offsets[rows, starts, 0]
        # Slots without a valid span can point past the window; they are dropped just below.
        end_chars = offsets[rows, np.minimum(ends, width - 1), 1]
        for row, window in enumerate(chunk.tolist()):
            keep = np.isfinite(scores[row])
            spans[window] = list(
                zip(
                    scores[row][keep].tolist(),
                    start_chars[row][keep].tolist(),
                    end_chars[row][keep].tolist(),
                )
            )
    null_scores = (
        start_logits[:, 0].astype(np.float64) + end_logits[:, 0].astype(np.float64)
    ).tolist()

    predictions = {}
    for example_id, context in zip(column(examples, "id"), column(examples, "context")):
        indices = windows_of.get(example_id)
        if not indices:
            raise ValueError(f"Question {example_id} has no windows among the features.")
        best_by_span = {}
        for index in indices:
            for score, start, end in spans[index]:
                if score > best_by_span.get((start, end), -np.inf):
                    best_by_span[(start, end)] = score
        # Best first; equal scores by character position, whatever window they came from.
        ranked = sorted(best_by_span.items(), key=lambda item: (-item[1], item[0]))[:n_best_size]
        nbest = [Candidate(context[s:e], score, s, e) for (s, e), score in ranked]
        best_span = nbest[0] if nbest else Candidate("", -np.inf, NO_SPAN, NO_SPAN)
        null = Candidate("", min(null_scores[i] for i in indices), NO_SPAN, NO_SPAN)
        if version_2_with_negative:
            nbest.append(null)
        if not nbest:
            nbest = [null]  # no valid span anywhere: the only honest answer is none
        for candidate, probability in zip(nbest, softmax(np.array([c.score for c in nbest]))):
            candidate.probability = float(probability)
        nbest.sort(key=lambda c: -c.score)

        chosen = best_span
        score_diff = null.score - best_span.score
        if version_2_with_negative and score_diff > null_score_diff_threshold:
            chosen = null
        predictions[example_id] = QuestionPrediction(
            text=chosen.text,
            probability=chosen.probability,
            start=chosen.start,
            end=chosen.end,
            nbest=nbest,
            no_answer_probability=null.probability if version_2_with_negative else 0.0,
            null_score_diff=float(score_diff),
        )
    return predictions
