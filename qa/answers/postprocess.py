"""Post-processing: from start/end logits over windows to one answer span per question.

For every window, every span (start <= end, at most `max_answer_length` tokens, both ends on
context tokens) is scored as start_logit + end_logit with array operations over a band of
(start, length) pairs, rather than by looping over pairs in Python. The best spans of all windows
of a question are merged, de-duplicated by character span, and turned into an n-best list with
probabilities (a softmax over the n-best scores); the merge too is a few sorts over the spans of
all questions at once. For SQuAD 2.0 the null answer ([CLS], the lowest null score over the
windows, as in the original BERT code) competes with the best span.
"""

import gc
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from qa.answers.settings import DEFAULTS

NO_SPAN = -1  # offset value of tokens that cannot be part of an answer
FEATURE_CHUNK = 64  # windows scored at once; small temporaries reuse heap memory (measured faster)


class Candidate(NamedTuple):
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
    array = np.full((len(windows), length, 2), NO_SPAN, dtype=np.int32)
    if pa.types.is_null(windows.type.value_type):
        # No window has a context token (passages of only zero-width or control characters):
        # Arrow types the column as lists of nulls, and no span can be answered.
        return array
    tokens = windows.flatten()  # one entry per token: [start, end], or null off the context
    counts = np.diff(windows.offsets.to_numpy())
    spans = np.full((len(tokens), 2), NO_SPAN, dtype=np.int32)
    spans[tokens.is_valid().to_numpy(zero_copy_only=False)] = (
        tokens.flatten().to_numpy().reshape(-1, 2)
    )
    rows = np.repeat(np.arange(len(windows)), counts)
    columns = np.arange(len(tokens)) - np.repeat(windows.offsets.to_numpy()[:-1], counts)
    keep = columns < length
    array[rows[keep], columns[keep]] = spans[keep]
    return array


def best_spans_per_window(start_logits, end_logits, offsets, max_answer_length, top_k):
    """Top-k valid spans of each window, one per character span: (scores, start tokens, end
    tokens), each (windows, k).

    Several tokens can cover the same characters (byte-level BPE splits one character into
    several tokens); the spans they form are one answer, so each window keeps its k best distinct
    character spans, each with its best score. Invalid slots (fewer than k) have score -inf.
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
    last = scores.shape[1] - k  # the k-th largest sits here once partitioned
    kth = np.partition(scores, last, axis=1)[:, last : last + 1]
    above = scores > kth
    tied = scores == kth
    wanted = (k - above.sum(axis=1, keepdims=True)) >= np.cumsum(tied, axis=1)
    top = np.nonzero(above | (tied & wanted))[1].reshape(windows, k)  # ascending positions
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")  # stable: position breaks ties
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    starts, ends = np.divmod(top, width)
    ends += starts
    # Where no two of the k best token spans cover the same characters, they are the k best
    # character spans (spans of one character span tied at the k-th score are settled the same
    # by token order as by character order). Other windows are settled one by one.
    keys = _span_keys(offsets, np.arange(windows)[:, None], starts, ends)
    ranked_keys = np.sort(np.where(np.isfinite(top_scores), keys, -1 - np.arange(k)), axis=1)
    repeated = (ranked_keys[:, 1:] == ranked_keys[:, :-1]).any(axis=1)
    for w in np.flatnonzero(repeated):
        top_scores[w], starts[w], ends[w] = _best_character_spans(scores[w], offsets[w], width, k)
    return top_scores, starts, ends


def _span_keys(offsets, rows, starts, ends):
    """One int64 per span naming its characters (start char, end char)."""
    length = offsets.shape[1]
    first = offsets[rows, np.minimum(starts, length - 1), 0].astype(np.int64)
    last = offsets[rows, np.minimum(ends, length - 1), 1].astype(np.int64)
    return (first << 32) | (last & 0xFFFFFFFF)


def _best_character_spans(row_scores, offsets, width, k):
    """One window's k best distinct character spans, exactly: best score first, then earlier
    characters, as the plain-loop definition ranks them. Token spans are taken in growing
    numbers until k distinct character spans are certain to be among them."""
    finite = int(np.isfinite(row_scores).sum())
    taken = min(2 * k, finite)
    while True:
        if taken < finite:
            threshold = np.partition(row_scores, len(row_scores) - taken)[len(row_scores) - taken]
            candidates = np.flatnonzero(row_scores >= threshold)  # every tie of the last one
        else:
            candidates = np.flatnonzero(np.isfinite(row_scores))
        starts, ends = np.divmod(candidates, width)
        ends += starts
        keys = _span_keys(offsets[None], np.zeros_like(starts), starts, ends)
        scores = row_scores[candidates]
        # Best score first, then characters; the first of each character span is its best.
        order = np.lexsort((ends, starts, keys & 0xFFFFFFFF, keys >> 32, -scores))
        _, first = np.unique(keys[order], return_index=True)
        chosen = order[np.sort(first)]
        # All spans scoring >= threshold are in: any character span missing scores lower.
        if len(chosen) >= k or taken >= finite:
            break
        taken = min(2 * taken, finite)
    chosen = chosen[:k]
    out_scores = np.full(k, -np.inf)
    out_starts, out_ends = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
    out_scores[: len(chosen)] = scores[chosen]
    out_starts[: len(chosen)], out_ends[: len(chosen)] = starts[chosen], ends[chosen]
    return out_scores, out_starts, out_ends


@contextmanager
def gc_paused():
    """Pause cyclic garbage collection while building many small objects that form no cycles.

    Each burst of allocations otherwise sets off collections that walk the whole heap (a loaded
    model and datasets make it large): most of the cost of building 200k n-best entries.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _group_starts(sorted_groups: np.ndarray) -> np.ndarray:
    """For each element of a sorted array, the index where its run of equal values begins."""
    is_first = np.ones(len(sorted_groups), dtype=bool)
    is_first[1:] = sorted_groups[1:] != sorted_groups[:-1]
    first = np.flatnonzero(is_first)
    return np.repeat(first, np.diff(np.append(first, len(sorted_groups))))


def window_spans(
    start_logits, end_logits, features, owner, max_answer_length, n_best_size, progress
):
    """(question row, score, start char, end char) of the best spans of every window."""
    length = start_logits.shape[1]
    all_offsets = offsets_to_array(features, length)
    # Windows of similar length are scored together, each chunk only as wide as its longest.
    window_lengths = (all_offsets[:, :, 0] != NO_SPAN).cumsum(axis=1).argmax(axis=1) + 1
    by_length = np.argsort(window_lengths, kind="stable")
    parts = []
    bar = tqdm(total=len(features), desc="Post-processing", unit="windows", disable=not progress)
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
        # Slots without a valid span (score -inf) can point past the window: clip, then drop.
        end_chars = offsets[rows, np.minimum(ends, width - 1), 1]
        keep = np.isfinite(scores) & (owner[chunk] >= 0)[:, None]
        parts.append(
            (
                np.broadcast_to(owner[chunk][:, None], scores.shape)[keep],
                scores[keep],
                offsets[rows, starts, 0][keep],
                end_chars[keep],
            )
        )
        bar.update(len(chunk))
    bar.close()
    return tuple(np.concatenate(p) for p in zip(*parts))


def n_best_per_question(question, score, start, end, n_best_size):
    """Merge the windows of each question (one candidate per character span, its best score),
    then keep the n_best_size best, ordered by question then rank."""
    order = np.lexsort((-score, end, start, question))
    question, score, start, end = question[order], score[order], start[order], end[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (question[1:] != question[:-1]) | (start[1:] != start[:-1]) | (end[1:] != end[:-1])
    question, score, start, end = question[first], score[first], start[first], end[first]
    # Best first; equal scores by character position, whatever window they came from.
    order = np.lexsort((end, start, -score, question))
    question, score, start, end = question[order], score[order], start[order], end[order]
    top = np.arange(len(question)) - _group_starts(question) < n_best_size
    return question[top], score[top], start[top], end[top]


@dataclass(frozen=True)
class AnswerRules:
    """How window logits become answers: what post-processing and the metric's threshold share.
    Frozen: a tuned threshold makes a new one (dataclasses.replace), it never edits this one."""

    version_2_with_negative: bool = False
    n_best_size: int = DEFAULTS["n_best_size"]
    max_answer_length: int = DEFAULTS["max_answer_length"]
    null_score_diff_threshold: float = DEFAULTS["null_score_diff_threshold"]

    def answers(self, examples, features, logits, progress: bool = False) -> dict:
        """{question id: QuestionPrediction} from the (start, end) logits of `features`."""
        start_logits, end_logits = logits
        return postprocess_qa_predictions(
            examples, features, start_logits, end_logits, **asdict(self), progress=progress
        )


def postprocess_qa_predictions(
    examples,
    features,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    version_2_with_negative: bool = False,
    n_best_size: int = DEFAULTS["n_best_size"],
    max_answer_length: int = DEFAULTS["max_answer_length"],
    null_score_diff_threshold: float = DEFAULTS["null_score_diff_threshold"],
    progress: bool = False,
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
    question_ids = column(examples, "id")
    if not question_ids:
        return {}
    row_of = {qid: row for row, qid in enumerate(question_ids)}
    # Question (example row) of each window; windows of questions not asked about are ignored.
    owner = np.array(
        [row_of.get(qid, -1) for qid in column(features, "example_id")], dtype=np.int64
    )
    windows_per_question = np.bincount(owner[owner >= 0], minlength=len(question_ids))
    if windows_per_question.min() == 0:
        missing = question_ids[int(np.argmin(windows_per_question))]
        raise ValueError(f"Question {missing} has no windows among the features.")

    # 1. The n_best_size best spans of every window, as flat arrays over all windows.
    question, score, start, end = window_spans(
        start_logits, end_logits, features, owner, max_answer_length, n_best_size, progress
    )
    # 2. and 3. One candidate per character span, the n_best_size best of each question.
    question, score, start, end = n_best_per_question(question, score, start, end, n_best_size)

    # 4. Probabilities: a softmax over each question's n-best, the null answer included for
    # SQuAD 2.0 (and as the only candidate where no valid span exists).
    null_by_window = start_logits[:, 0].astype(np.float64) + end_logits[:, 0].astype(np.float64)
    null_score = np.full(len(question_ids), np.inf)
    np.minimum.at(null_score, owner[owner >= 0], null_by_window[owner >= 0])
    spans_per_question = np.bincount(question, minlength=len(question_ids))
    first_of = np.concatenate([[0], np.cumsum(spans_per_question)])
    best_score = np.full(len(question_ids), -np.inf)
    has_span = spans_per_question > 0
    best_score[has_span] = score[first_of[:-1][has_span]]
    with_null = np.ones_like(has_span) if version_2_with_negative else ~has_span
    shift = np.maximum(best_score, np.where(with_null, null_score, -np.inf))
    weight = np.exp(score - shift[question])
    null_weight = np.where(with_null, np.exp(null_score - shift), 0.0)
    total = np.bincount(question, weights=weight, minlength=len(question_ids)) + null_weight
    probability = weight / total[question]
    null_probability = null_weight / total

    # The null goes after the spans that score at least as well, as a stable sort would put it.
    null_rank = np.bincount(
        question, weights=score >= null_score[question], minlength=len(question_ids)
    )

    # 5. Python objects, built from the arrays in one pass.
    contexts = column(examples, "context")
    bounds = first_of.tolist()
    score_diffs = (null_score - best_score).tolist()
    predictions = {}
    starts, ends = start.tolist(), end.tolist()
    with gc_paused():
        texts = [contexts[q][s:e] for q, s, e in zip(question.tolist(), starts, ends)]
        candidates = list(map(Candidate, texts, score.tolist(), starts, ends, probability.tolist()))
        for row, qid in enumerate(question_ids):
            nbest = candidates[bounds[row] : bounds[row + 1]]
            null = Candidate(
                "", float(null_score[row]), NO_SPAN, NO_SPAN, float(null_probability[row])
            )
            # Without a valid span (a passage of no token) "no answer" is the only candidate,
            # whatever the model: chosen with its probability, 1.
            chosen = nbest[0] if nbest else null
            if with_null[row]:
                nbest.insert(int(null_rank[row]), null)
            if version_2_with_negative and score_diffs[row] > null_score_diff_threshold:
                chosen = null
            predictions[qid] = QuestionPrediction(
                text=chosen.text,
                probability=chosen.probability,
                start=chosen.start,
                end=chosen.end,
                nbest=nbest,
                no_answer_probability=null.probability,  # 0 where "no answer" is not a candidate
                null_score_diff=score_diffs[row],
            )
    return predictions
