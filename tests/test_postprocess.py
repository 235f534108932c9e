"""Post-processing: known answers on hand-made logits, and the fast path against brute force."""

import numpy as np
import pytest
from datasets import Dataset

from helpers.reference import mismatched_questions, reference_postprocess
from utils_qa import postprocess_qa_predictions

CONTEXT = "Denver Broncos beat the Carolina Panthers in Santa Clara"
# One window: [CLS] q q [SEP] then one token per context word, then [SEP].
WORDS = CONTEXT.split()


def word_offsets():
    offsets, cursor = [], 0
    for word in WORDS:
        start = CONTEXT.index(word, cursor)
        offsets.append([start, start + len(word)])
        cursor = start + len(word)
    return offsets


def one_window(qid="q1", context=CONTEXT):
    offsets = [None, None, None, None] + word_offsets() + [None]
    examples = Dataset.from_dict({"id": [qid], "context": [context]})
    features = Dataset.from_dict({"example_id": [qid], "offset_mapping": [offsets]})
    return examples, features, len(offsets)


def logits_with(length, starts=(), ends=(), base=-5.0):
    """Flat logits with chosen peaks: starts/ends are (token, value) pairs."""
    start, end = np.full((1, length), base), np.full((1, length), base)
    for token, value in starts:
        start[0, token] = value
    for token, value in ends:
        end[0, token] = value
    return start, end


def test_best_span_is_the_highest_scoring_valid_pair():
    examples, features, length = one_window()
    # "Carolina Panthers" = words 4..5 = tokens 8..9
    start, end = logits_with(length, starts=[(8, 6.0)], ends=[(9, 5.0)])
    answer = postprocess_qa_predictions(examples, features, start, end)["q1"]
    assert answer.text == "Carolina Panthers"
    assert CONTEXT[answer.start : answer.end] == "Carolina Panthers"
    assert answer.nbest[0].score == pytest.approx(11.0)


def test_end_before_start_and_non_context_tokens_are_never_chosen():
    examples, features, length = one_window()
    # The highest start is after the highest end, and [CLS]/question tokens carry huge logits.
    start, end = logits_with(
        length, starts=[(0, 50.0), (2, 40.0), (9, 8.0), (5, 3.0)], ends=[(0, 50.0), (6, 7.0)]
    )
    answer = postprocess_qa_predictions(examples, features, start, end)["q1"]
    # Best valid pair: start 5 ("Broncos") + end 6 ("beat") = 10; start 9 finds no good end.
    assert answer.text == "Broncos beat"


def test_max_answer_length_is_respected():
    examples, features, length = one_window()
    start, end = logits_with(length, starts=[(4, 9.0), (10, 1.0)], ends=[(12, 9.0), (11, 1.0)])
    long_answer = postprocess_qa_predictions(examples, features, start, end, max_answer_length=30)
    assert long_answer["q1"].text == CONTEXT  # tokens 4..12: all nine words
    short = postprocess_qa_predictions(examples, features, start, end, max_answer_length=3)
    assert short["q1"].text == "in Santa Clara"  # tokens 10..12: the best pair that fits


def test_nbest_is_sorted_unique_and_probabilities_sum_to_one():
    examples, features, length = one_window()
    start, end = logits_with(length, starts=[(8, 3.0), (4, 2.0)], ends=[(9, 3.0), (5, 1.0)])
    answer = postprocess_qa_predictions(examples, features, start, end, n_best_size=5)["q1"]
    scores = [c.score for c in answer.nbest]
    assert scores == sorted(scores, reverse=True)
    assert len({(c.start, c.end) for c in answer.nbest}) == len(answer.nbest) == 5
    assert sum(c.probability for c in answer.nbest) == pytest.approx(1.0)
    assert answer.probability == answer.nbest[0].probability
    # (8, 9) = 6, then (4, 9) = 5, then (4, 5) = 3
    assert [c.text for c in answer.nbest[:3]] == [
        "Carolina Panthers",
        "Denver Broncos beat the Carolina Panthers",
        "Denver Broncos",
    ]


def test_null_answer_wins_only_above_threshold():
    examples, features, length = one_window()
    # null = 4 + 4 = 8; best span = 3 + 3 = 6; diff = 2
    start, end = logits_with(length, starts=[(0, 4.0), (8, 3.0)], ends=[(0, 4.0), (9, 3.0)])
    v2 = postprocess_qa_predictions(examples, features, start, end, version_2_with_negative=True)
    assert v2["q1"].text == ""
    assert v2["q1"].null_score_diff == pytest.approx(2.0)
    assert v2["q1"].no_answer_probability > 0.5
    assert any(c.text == "" for c in v2["q1"].nbest)
    lenient = postprocess_qa_predictions(
        examples, features, start, end, version_2_with_negative=True, null_score_diff_threshold=2.5
    )
    assert lenient["q1"].text == "Carolina Panthers"
    v1 = postprocess_qa_predictions(examples, features, start, end)
    assert v1["q1"].text == "Carolina Panthers"
    assert all(c.text for c in v1["q1"].nbest)  # no null candidate in SQuAD 1.1 mode


def test_question_spread_over_windows_uses_the_best_window_and_min_null():
    offsets = [None, None] + word_offsets() + [None]
    examples = Dataset.from_dict({"id": ["q"], "context": [CONTEXT]})
    features = Dataset.from_dict({"example_id": ["q", "q"], "offset_mapping": [offsets, offsets]})
    length = len(offsets)
    start, end = np.full((2, length), -5.0), np.full((2, length), -5.0)
    start[0, 3], end[0, 3] = 2.0, 2.0  # "Broncos" in window 0, score 4
    start[1, 6], end[1, 7] = 5.0, 5.0  # "Carolina Panthers" in window 1, score 10
    start[0, 0], end[0, 0] = 6.0, 6.0  # null 12 in window 0
    start[1, 0], end[1, 0] = 1.0, 1.0  # null 2 in window 1: the minimum counts
    answer = postprocess_qa_predictions(
        examples, features, start, end, version_2_with_negative=True
    )["q"]
    assert answer.text == "Carolina Panthers"
    assert answer.null_score_diff == pytest.approx(2.0 - 10.0)


def test_padding_past_a_window_is_ignored():
    examples, features, length = one_window()
    start, end = logits_with(length + 6, starts=[(8, 2.0), (length + 2, 99.0)], ends=[(9, 2.0)])
    assert (
        postprocess_qa_predictions(examples, features, start, end)["q1"].text == "Carolina Panthers"
    )


def random_case(rng, questions=6, shared=False):
    """Questions with 1-3 windows each; random context spans, question tokens and padding.

    shared: some words become several tokens that all cover the word's characters (as byte-level
    BPE splits one character into several tokens), others two tokens covering a part each.
    """
    ids, contexts, owners, all_offsets = [], [], [], []
    for q in range(questions):
        words = [f"w{q}x{k}" for k in range(rng.integers(8, 30))]
        context = " ".join(words)
        ids.append(f"q{q}")
        contexts.append(context)
        spans, cursor = [], 0
        for word in words:
            draw = rng.random() if shared else 1.0
            if draw < 0.3:  # 2-3 tokens, one character span
                spans += [[cursor, cursor + len(word)]] * int(rng.integers(2, 4))
            elif draw < 0.45:  # two pieces
                spans += [[cursor, cursor + 2], [cursor + 2, cursor + len(word)]]
            else:
                spans.append([cursor, cursor + len(word)])
            cursor += len(word) + 1
        for _ in range(rng.integers(1, 4)):
            lo = int(rng.integers(0, len(spans) - 4))
            window = spans[lo : lo + int(rng.integers(4, 16))]
            owners.append(f"q{q}")
            all_offsets.append([None] * int(rng.integers(1, 5)) + window + [None])
    length = max(len(o) for o in all_offsets) + 3
    start = rng.normal(size=(len(owners), length)) * 3
    end = rng.normal(size=(len(owners), length)) * 3
    examples = Dataset.from_dict({"id": ids, "context": contexts})
    features = Dataset.from_dict({"example_id": owners, "offset_mapping": all_offsets})
    return examples, features, start, end


@pytest.mark.parametrize("shared", [False, True], ids=["distinct", "shared-spans"])
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("v2", [False, True])
def test_fast_path_matches_brute_force_on_random_logits(seed, v2, shared):
    rng = np.random.default_rng(seed)
    examples, features, start, end = random_case(rng, shared=shared)
    n_best, max_len, threshold = int(rng.integers(1, 8)), int(rng.integers(1, 6)), 0.5
    fast = postprocess_qa_predictions(
        examples, features, start, end, v2, n_best, max_len, null_score_diff_threshold=threshold
    )
    slow = reference_postprocess(examples, features, start, end, v2, n_best, max_len, threshold)
    assert mismatched_questions(fast, slow) == []


@pytest.mark.parametrize("shared", [False, True], ids=["distinct", "shared-spans"])
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("v2", [False, True])
def test_fast_path_matches_brute_force_when_scores_tie(seed, v2, shared):
    # Small integer logits make many spans score the same: ties must break the same way.
    rng = np.random.default_rng(100 + seed)
    examples, features, start, end = random_case(rng, questions=8, shared=shared)
    start, end = np.round(start / 3), np.round(end / 3)
    fast = postprocess_qa_predictions(examples, features, start, end, v2, 5, 4)
    slow = reference_postprocess(examples, features, start, end, v2, 5, 4, 0.0)
    assert mismatched_questions(fast, slow) == []


def test_fewer_valid_spans_than_n_best_in_a_short_window():
    examples = Dataset.from_dict({"id": ["q"], "context": ["Paris"]})
    features = Dataset.from_dict({"example_id": ["q"], "offset_mapping": [[None, [0, 5], None]]})
    start, end = np.zeros((1, 3)), np.zeros((1, 3))
    answer = postprocess_qa_predictions(examples, features, start, end, n_best_size=20)["q"]
    assert answer.text == "Paris" and len(answer.nbest) == 1


def test_tokens_sharing_a_character_span_do_not_shrink_the_nbest():
    # Tokens 1 and 2 cover the same character ("é" split into two byte tokens): their spans
    # (1,1), (1,2), (2,2) are one answer; three distinct answers exist and three are asked for.
    context = "é, Rome"
    examples = Dataset.from_dict({"id": ["q"], "context": [context]})
    offsets = [None, [0, 1], [0, 1], [3, 7], None]
    features = Dataset.from_dict({"example_id": ["q"], "offset_mapping": [offsets]})
    start = np.array([[0.0, 5.0, 4.0, 1.0, 0.0]])
    end = np.array([[0.0, 5.0, 4.0, 1.0, 0.0]])
    answer = postprocess_qa_predictions(examples, features, start, end, n_best_size=3)["q"]
    assert [(c.text, c.score) for c in answer.nbest] == [
        ("é", 10.0),
        ("é, Rome", 6.0),
        ("Rome", 2.0),
    ]
    expected = np.exp([10.0, 6.0, 2.0]) / np.exp([10.0, 6.0, 2.0]).sum()
    assert [c.probability for c in answer.nbest] == pytest.approx(expected.tolist())
    slow = reference_postprocess(examples, features, start, end, False, 3, 30, 0.0)
    assert mismatched_questions({"q": answer}, slow) == []


def test_mismatched_logits_are_refused():
    examples, features, length = one_window()
    start, end = np.zeros((2, length)), np.zeros((2, length))
    with pytest.raises(ValueError, match="2 windows but 1 features"):
        postprocess_qa_predictions(examples, features, start, end)


@pytest.mark.parametrize("v2", [False, True])
def test_nbest_probabilities_are_a_softmax_over_the_listed_scores(v2):
    rng = np.random.default_rng(7)
    examples, features, start, end = random_case(rng, questions=10)
    start, end = np.round(start), np.round(end)  # ties between spans and the null answer
    for answer in postprocess_qa_predictions(examples, features, start, end, v2, 6, 4).values():
        scores = np.array([c.score for c in answer.nbest])
        expected = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        assert [c.probability for c in answer.nbest] == pytest.approx(expected.tolist())
        assert list(scores) == sorted(scores, reverse=True)
        nulls = [c for c in answer.nbest if c.start < 0]
        assert len(nulls) == (1 if v2 else 0)
        if v2:  # the null goes after spans of equal score
            at = answer.nbest.index(nulls[0])
            assert all(c.score >= nulls[0].score for c in answer.nbest[:at])
            assert all(c.score < nulls[0].score for c in answer.nbest[at + 1 :])
            assert answer.no_answer_probability == nulls[0].probability
