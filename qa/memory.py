"""Resident memory of this process while it trains: is it small, and is it flat?

A leak or a growing cache shows as resident memory that keeps rising after the first steps, when
every buffer has been allocated once; the peak alone cannot tell that apart from one big buffer.
"""

import os
import resource

from transformers import TrainerCallback

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_mib() -> float:
    """This process's resident memory now (Linux /proc), else its peak so far."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * PAGE / 2**20
    except OSError:
        return peak_mib()


def peak_mib() -> float:
    """This process's own peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemoryWatch(TrainerCallback):
    """Adds rss_mib to every logged metrics line and notes the resident memory at step `mark`
    and at the end of training, for the growth in between."""

    def __init__(self, mark: int = 100):
        self.mark, self.at_mark, self.at_end = mark, None, None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.mark:
            self.at_mark = resident_mib()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None:
            logs["rss_mib"] = round(resident_mib())

    def on_train_end(self, args, state, control, **kwargs):
        self.at_end = resident_mib()

    def summary(self) -> dict:
        result = {"train_rss_mib_end": round(self.at_end)} if self.at_end else {}
        if self.at_mark and self.at_end:
            result[f"train_rss_mib_step_{self.mark}"] = round(self.at_mark)
            result[f"train_rss_growth_mib_after_step_{self.mark}"] = round(
                self.at_end - self.at_mark
            )
        return result
