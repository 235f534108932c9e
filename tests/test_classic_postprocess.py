"""The bench's classic top-k baseline: with k covering every token it must find the exhaustive
loop's answer, and with a small k it may not (which is why it is a baseline, not a reference)."""

import numpy as np
import pytest

from bench.classic_postprocess import classic_postprocess
from helpers.reference import reference_postprocess
from test_postprocess import random_case


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("v2", [False, True])
def test_classic_top_k_over_every_token_finds_the_exhaustive_answer(seed, v2):
    rng = np.random.default_rng(seed)
    examples, features, start, end = random_case(rng)
    every_token, max_len = start.shape[1], int(rng.integers(1, 6))
    classic = classic_postprocess(examples, features, start, end, v2, every_token, max_len, 0.5)
    exhaustive = reference_postprocess(examples, features, start, end, v2, 20, max_len, 0.5)
    assert {q: text for q, (text, _) in classic.items()} == {
        q: text for q, (text, _) in exhaustive.items()
    }
    assert all(0.0 < p <= 1.0 for _, p in classic.values())


def test_classic_top_k_can_miss_a_valid_span_that_the_exhaustive_loop_finds():
    rng = np.random.default_rng(0)
    misses = 0
    for _ in range(20):
        examples, features, start, end = random_case(rng)
        classic = classic_postprocess(examples, features, start, end, False, 1, 3, 0.0)
        exhaustive = reference_postprocess(examples, features, start, end, False, 1, 3, 0.0)
        misses += sum(classic[q][0] != exhaustive[q][0] for q in exhaustive)
    assert misses > 0
