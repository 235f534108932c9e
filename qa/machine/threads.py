"""CPU threads for this process, settled before torch (and its OpenMP runtime) loads.

Imported first by run_qa.py, for its side effect: `accelerate launch` starts a CPU process with
OMP_NUM_THREADS=1 unless given --num_cpu_threads_per_process, and OpenMP reads that variable once,
when torch loads. torch.set_num_threads() later still runs every core, but a process that starts
with OMP_NUM_THREADS=1 and raises it trained measurably slower than one started with the cores
(docs/speed.md). This module imports nothing heavy, so it can run before torch does.
"""

import os

# What accelerate (or the shell) had set before this process claimed its cores; for the log.
OMP_NUM_THREADS_GIVEN = os.environ.get("OMP_NUM_THREADS")


def default_threads() -> int:
    """This machine's cores (those the process may run on), shared among its local processes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def cpu_threads(asked: int) -> int:
    """Threads for this process: as asked (the cpu_threads argument), else default_threads()."""
    return asked if asked > 0 else default_threads()


def claim_cores() -> None:
    """OpenMP starts with this process's share of the cores, whatever OMP_NUM_THREADS said.

    The recipe's thread count is the cpu_threads argument (0: default_threads()); OMP_NUM_THREADS
    is overridden because accelerate sets it to 1 without being asked. A cpu_threads other than
    the default is applied later by torch.set_num_threads()."""
    os.environ["OMP_NUM_THREADS"] = str(default_threads())


claim_cores()
