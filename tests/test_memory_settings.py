"""keep_freed_memory: freed memory stays mapped for reuse when on, goes back when off; and the
headline config evaluates in batches that reuse the training step's buffers."""

import os
import subprocess
import sys

import pytest

from qa import ROOT
from qa.machine.memory import KEEP_FREED

PROBE = """
import sys
from qa.machine.memory import keep_freed_memory, resident_mib
print(keep_freed_memory(sys.argv[1] == "on"))
before = resident_mib()
block = bytearray(200 * 2**20)
block[::4096] = b"\\x01" * len(range(0, len(block), 4096))  # touch every page
del block
print(resident_mib() - before)
"""


def probe(setting: str, **extra_env) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in KEEP_FREED} | extra_env
    out = subprocess.run(
        [sys.executable, "-c", PROBE, setting], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return out[0], float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_freed_memory_is_kept_for_reuse_only_when_asked():
    line, kept = probe("on")
    assert line.startswith("glibc keeps freed memory") and kept > 150, (line, kept)
    line, kept = probe("off")
    assert "as is" in line and kept < 50, (line, kept)


def test_the_environment_wins_over_the_recipe():
    line, _ = probe("on", MALLOC_TOP_PAD_="0")
    assert line == "glibc allocator settings from the environment (MALLOC_TOP_PAD_)"


def test_the_headline_config_evaluates_in_training_sized_batches():
    """Learning-curve evaluations in batches of the training step's size reuse its buffers;
    larger ones added their own to the resident memory, which the allocator setting keeps."""
    import json

    config = json.loads((ROOT / "configs" / "squad20pct.json").read_text())
    assert config["per_device_eval_batch_size"] == config["per_device_train_batch_size"]
