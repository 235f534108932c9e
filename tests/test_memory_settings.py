"""keep_freed_memory: freed memory stays mapped for reuse when on, goes back when off, and a long
batch's large blocks go back either way; the oneDNN kernel cache is bounded; and the headline
config evaluates in batches that reuse the training step's buffers."""

import os
import subprocess
import sys

import pytest

from qa import ROOT
from qa.machine.memory import KEEP_FREED, KERNEL_CACHE_VARIABLES, limit_kernel_cache

PROBE = """
import sys
from qa.machine.memory import keep_freed_memory, resident_mib
print(keep_freed_memory(sys.argv[1] == "on"))
piece = int(sys.argv[2]) * 2**20
before = resident_mib()
blocks = [bytearray(piece) for _ in range(200 * 2**20 // piece)]
for block in blocks:
    block[::4096] = b"\\x01" * len(range(0, len(block), 4096))  # touch every page
del blocks, block
print(resident_mib() - before)
"""


def probe(setting: str, piece_mib: int, **extra_env) -> tuple[str, float]:
    """(the log line, MiB still resident) after 200 MiB in pieces of `piece_mib` is freed."""
    env = {k: v for k, v in os.environ.items() if k not in KEEP_FREED} | extra_env
    out = subprocess.run(
        [sys.executable, "-c", PROBE, setting, str(piece_mib)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return out[0], float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_freed_memory_is_kept_for_reuse_only_when_asked():
    line, kept = probe("on", piece_mib=1)
    assert line.startswith("glibc keeps freed memory") and kept > 150, (line, kept)
    line, kept = probe("off", piece_mib=1)
    assert "as is" in line and kept < 50, (line, kept)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_large_blocks_go_back_when_freed_so_they_leave_no_holes_in_the_heap():
    """A long batch's activations are blocks of several MiB: kept on the heap, the smaller
    tensors and cached kernels of the next batches settle in their holes and the next long batch
    grows the heap again; mapped on their own, they go back whole."""
    line, kept = probe("on", piece_mib=8)
    assert line.startswith("glibc keeps freed memory") and kept < 50, (line, kept)


def test_the_environment_wins_over_the_recipe():
    line, _ = probe("on", piece_mib=1, MALLOC_TOP_PAD_="0")
    assert line == "glibc allocator settings from the environment (MALLOC_TOP_PAD_)"


def test_the_headline_config_evaluates_in_training_sized_batches():
    """Learning-curve evaluations in batches of the training step's size reuse its buffers;
    larger ones added their own to the resident memory, which the allocator setting keeps."""
    import json

    config = json.loads((ROOT / "configs" / "squad20pct.json").read_text())
    assert config["per_device_eval_batch_size"] == config["per_device_train_batch_size"]


def test_the_kernel_cache_is_bounded_unless_the_environment_says_otherwise(monkeypatch):
    for name in KERNEL_CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert limit_kernel_cache(64) == "oneDNN keeps its last 64 kernels (kernel_cache_capacity)"
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"
    monkeypatch.setenv("DNNL_PRIMITIVE_CACHE_CAPACITY", "8")
    assert limit_kernel_cache(64).endswith("(ONEDNN_PRIMITIVE_CACHE_CAPACITY=64)")
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    assert limit_kernel_cache(64).endswith("(DNNL_PRIMITIVE_CACHE_CAPACITY=8)")
    monkeypatch.delenv("DNNL_PRIMITIVE_CACHE_CAPACITY")
    assert "as is" in limit_kernel_cache(-1)
    assert not any(name in os.environ for name in KERNEL_CACHE_VARIABLES)


KERNELS = """
import sys
import torch
from qa.machine.memory import limit_kernel_cache
limit_kernel_cache(int(sys.argv[1]))  # after torch has loaded, before its first kernel
picture, filters = torch.randn(2, 64, 28, 28), torch.randn(64, 64, 3, 3)
for _ in range(2):  # the same shapes twice: the second finds its kernels cached, if kept
    torch.nn.functional.conv2d(picture, filters, padding=1)
"""


@pytest.mark.slow  # starts a fresh interpreter (docs/design.md: The test suite)
def test_the_kernel_cache_limit_holds_when_set_after_torch_has_loaded():
    """run_qa.py sets it once its arguments are parsed, long after torch loaded: oneDNN must
    read it at its first kernel (its verbose log says whether each kernel came from the cache)."""
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_CACHE_VARIABLES}
    env["ONEDNN_VERBOSE"] = "all"

    def cache_lookups(capacity: int) -> tuple[int, int]:
        log = subprocess.run(
            [sys.executable, "-c", KERNELS, str(capacity)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return log.count("create:cache_hit"), log.count("create:cache_miss")

    hits, misses = cache_lookups(-1)
    if misses == 0:
        pytest.skip("this torch build runs these convolutions without oneDNN")
    assert hits > 0, "oneDNN's own cache should serve the second convolution"
    hits, misses = cache_lookups(0)
    assert hits == 0 and misses > 0
