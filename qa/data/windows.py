"""Turn questions into model windows: question first, then a slice of the context.

A context longer than the window is split into overlapping windows (`doc_stride` tokens of
overlap), so an answer near a boundary is whole in at least one of them. Only the context is
ever truncated. Windows are not padded here: the collator pads each batch to its own longest
window, which is what makes bf16 on CPU pay.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from qa.data.load import SquadDataError

CLS_INDEX = 0  # BERT puts [CLS] first; "no answer in this window" points at it
# As BERT's max_query_length. The longest SQuAD 1.1/2.0 question has 61 tokens (uncased WordPiece);
# a pasted paragraph would leave no room for context, and the tokenizer aborts on it.
MAX_QUESTION_TOKENS = 64


class QuestionTooLong(ValueError):
    """Questions longer than the window allows: `found` is [(question id, tokens), ...]."""

    def __init__(self, found: list[tuple[str, int]], limit: int):
        self.found, self.limit = found, limit
        qid, tokens = found[0]
        others = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        super().__init__(
            f"question {qid} has {tokens} tokens{others}; questions may have up to {limit} "
            "tokens (a sentence or two), the rest of the window is for the passage: shorten it."
        )


class AnswerWithoutTokens(ValueError):
    """Answers made only of characters the tokenizer drops (spaces, control characters): no
    token can be labelled with them. `found` is [(question id, answer text), ...]."""

    def __init__(self, found: list[tuple[str, str]]):
        self.found = found
        qid, text = found[0]
        others = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        super().__init__(
            f"question {qid}: its answer {text!r} is only characters the tokenizer drops "
            f"(spaces, control characters){others}, so no token of the passage can be labelled "
            "with it; make the answer the words it stands for (text and answer_start), or "
            "remove the record."
        )


def question_token_limit(tokenizer, max_seq_length: int, doc_stride: int) -> int:
    """Most question tokens a window takes: MAX_QUESTION_TOKENS, less where the window is too
    small to hold that much and still advance over the context by one token."""
    room = max_seq_length - tokenizer.num_special_tokens_to_add(pair=True) - doc_stride - 1
    return max(0, min(MAX_QUESTION_TOKENS, room))


def check_question_lengths(ids, questions, tokenizer, max_seq_length: int, doc_stride: int):
    """Raise QuestionTooLong for questions (leading spaces stripped) over the limit."""
    limit = question_token_limit(tokenizer, max_seq_length, doc_stride)
    counts = tokenizer([q.lstrip() for q in questions], add_special_tokens=False)["input_ids"]
    found = [(qid, len(c)) for qid, c in zip(ids, counts) if len(c) > limit]
    if found:
        raise QuestionTooLong(found, limit)


def tokenize_windows(examples: dict, tokenizer, max_seq_length: int, doc_stride: int):
    # Some SQuAD questions start with runs of spaces that only waste window room.
    questions = [q.lstrip() for q in examples["question"]]
    check_question_lengths(examples["id"], questions, tokenizer, max_seq_length, doc_stride)
    return tokenizer(
        questions,
        examples["context"],
        truncation="only_second",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )


def context_token_span(sequence_ids: list) -> tuple[int, int] | None:
    """First and last token index of the context (sequence 1) in one window; None when the
    window has no context token (a passage of only spaces or control characters)."""
    if 1 not in sequence_ids:
        return None
    first = sequence_ids.index(1)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    return first, last


def label_window(offsets, sequence_ids, answer_starts, answer_texts) -> tuple[int, int]:
    """Token positions of the first gold answer if this window holds all of it, else [CLS]."""
    if not answer_starts:
        return CLS_INDEX, CLS_INDEX
    start_char = answer_starts[0]
    end_char = start_char + len(answer_texts[0])
    span = context_token_span(sequence_ids)
    if span is None:
        return CLS_INDEX, CLS_INDEX
    first, last = span
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return CLS_INDEX, CLS_INDEX
    start = first
    while start <= last and offsets[start][1] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][0] >= end_char:
        end -= 1
    if start > end:  # the answer is only characters the tokenizer drops (spaces, controls)
        return CLS_INDEX, CLS_INDEX
    return start, end


def touches_answer(offsets, sequence_ids, start_char: int, end_char: int) -> bool:
    """Does some context token of this window overlap the answer's characters?"""
    return any(
        sequence_id == 1 and span[0] < end_char and span[1] > start_char
        for span, sequence_id in zip(offsets, sequence_ids)
    )


def check_answers_have_tokens(examples, windows, owners, offset_mapping, labels) -> None:
    """Raise AnswerWithoutTokens for answered questions that no token of the passage covers.

    Only questions no window labelled are looked at (a label is a covering token); an answer
    too long for any one window still has tokens somewhere and is kept, labelled [CLS]."""
    labelled = {owners[i] for i, (start, _) in enumerate(labels) if start != CLS_INDEX}
    windows_of = {}
    for i, owner in enumerate(owners):
        windows_of.setdefault(owner, []).append(i)
    found = []
    for owner, indices in windows_of.items():
        answers = examples["answers"][owner]
        if owner in labelled or not answers["answer_start"]:
            continue
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        if not any(
            touches_answer(offset_mapping[i], windows.sequence_ids(i), start_char, end_char)
            for i in indices
        ):
            found.append((examples["id"][owner], answers["text"][0]))
    if found:
        raise AnswerWithoutTokens(found)


def prepare_train_features(examples: dict, tokenizer, max_seq_length: int, doc_stride: int):
    windows = tokenize_windows(examples, tokenizer, max_seq_length, doc_stride)
    owners = windows.pop("overflow_to_sample_mapping")
    offset_mapping = windows.pop("offset_mapping")
    labels = [
        label_window(
            offsets,
            windows.sequence_ids(i),
            examples["answers"][owners[i]]["answer_start"],
            examples["answers"][owners[i]]["text"],
        )
        for i, offsets in enumerate(offset_mapping)
    ]
    check_answers_have_tokens(examples, windows, owners, offset_mapping, labels)
    windows["start_positions"] = [start for start, _ in labels]
    windows["end_positions"] = [end for _, end in labels]
    windows["length"] = [len(ids) for ids in windows["input_ids"]]
    return windows


def prepare_eval_features(examples: dict, tokenizer, max_seq_length: int, doc_stride: int):
    """Windows plus what post-processing needs: the owning question and context-only offsets."""
    windows = tokenize_windows(examples, tokenizer, max_seq_length, doc_stride)
    owners = windows.pop("overflow_to_sample_mapping")
    windows["example_id"] = [examples["id"][owner] for owner in owners]
    # Offsets of question and special tokens become None so no answer can start or end there.
    windows["offset_mapping"] = [
        [
            span if sequence_id == 1 else None
            for span, sequence_id in zip(offsets, windows.sequence_ids(i))
        ]
        for i, offsets in enumerate(windows["offset_mapping"])
    ]
    windows["length"] = [len(ids) for ids in windows["input_ids"]]
    return windows


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of what the tokenizer does to text: its serialised state less the truncation and
    padding it was last called with, which every call (ours included) rewrites, so that the
    same tokenizer gives the same cache key before and after tokenising."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def features_cache_file(
    cache_dir: str, data_args, tokenizer, split: str, examples, checksums
) -> str | None:
    """A cache path keyed on everything that shapes the windows; None for Hub data."""
    if split not in checksums:
        return None  # datasets caches Hub data by its own fingerprint
    key = {
        "data": [v["sha256"] for k, v in sorted(checksums.items()) if k.startswith(split)],
        # A table read through other columns (qa/data/tables.py) is other data from the same file.
        "columns": [v.get("columns") for k, v in sorted(checksums.items()) if k.startswith(split)],
        "ids": hashlib.sha256("\n".join(examples["id"]).encode()).hexdigest(),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "max_seq_length": data_args.max_seq_length,
        "doc_stride": data_args.doc_stride,
        "code": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),  # this file
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f"{split}-{digest}.arrow")


def cached_windows(
    examples, prepare, split, *, data_args, cache_dir, tokenizer, checksums, training_args
):
    """`prepare` (train or eval windows) over `examples`, kept in cache_dir for later runs."""
    cache_file = features_cache_file(cache_dir, data_args, tokenizer, split, examples, checksums)
    fingerprint = None  # datasets then hashes the function and its arguments itself
    if cache_file:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        # The cache key already says what the windows depend on; without it datasets would
        # pickle the whole tokenizer to hash it, most of a second per split on each run.
        fingerprint = Path(cache_file).stem
    try:
        # local=False: one process of the whole run writes the cache; the others then read it.
        with training_args.main_process_first(local=False, desc=f"tokenising {split}"):
            return examples.map(
                prepare,
                batched=True,
                remove_columns=examples.column_names,
                fn_kwargs={
                    "tokenizer": tokenizer,
                    "max_seq_length": data_args.max_seq_length,
                    "doc_stride": data_args.doc_stride,
                },
                cache_file_name=cache_file,
                new_fingerprint=fingerprint,
                desc=f"Tokenising {split} into windows",
            )
    except (QuestionTooLong, AnswerWithoutTokens) as err:
        files = [v["path"] for k, v in checksums.items() if k.startswith(split)] or [split]
        raise SquadDataError(f"{', '.join(files)}: {err}") from None


def longest_first(features):
    """Longest windows first: batches of similar length pad little, and the peak memory shows
    at once. Post-processing finds each window's question by example_id, so the order is free."""
    return features.select(np.argsort(-np.asarray(features["length"]), kind="stable"))


def first_questions(examples, features, count: int):
    """(windows, questions) of the first `count` questions, e.g. for a cheap score while
    training."""
    subset = examples.select(range(min(count, len(examples))))
    asked = set(subset["id"])
    subset_features = features.filter(
        lambda ids: [i in asked for i in ids],
        input_columns="example_id",
        batched=True,
        keep_in_memory=True,
    )
    return subset_features, subset
