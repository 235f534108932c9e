"""Decisions made once, by the main process, and followed by every process of a run.

With several processes (and several machines) each process used to look at the output folder
for itself: one could see a checkpoint the others did not, or skip a barrier after the main
process had moved the folder, and the run hung. Here the main process (rank 0 of the whole run)
decides and every other process receives its answer, or its error, through one broadcast that
all processes reach, whatever the answer is.
"""

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def decided_on_main(training_args, decide: Callable[[], T]) -> T:
    """decide() on the main process; its result on every process.

    A SystemExit on the main process (a refusal with its message) is raised on every process;
    any other error there is raised on the main process and stops the others with a line
    naming it, instead of leaving them waiting.
    """
    if training_args.world_size == 1:
        return decide()
    outcome, failure = None, None
    if training_args.process_index == 0:
        try:
            outcome = ("value", decide())
        except SystemExit as err:
            outcome = ("exit", err.code)
        except Exception as err:  # noqa: BLE001 - re-raised below, after the others are told
            outcome, failure = ("error", f"{type(err).__name__}: {err}"), err
    box = [outcome]
    dist.broadcast_object_list(box, src=0)  # the group the Trainer's arguments started
    kind, value = box[0]
    if failure is not None:
        raise failure
    if kind == "exit":
        raise SystemExit(value)
    if kind == "error":
        raise SystemExit(f"error: the main process (rank 0) failed: {value}")
    return value


def any_process(flag: bool, training_args) -> bool:
    """True on every process if `flag` is true on any one of them (one all_reduce).

    Every process must call it at the same point of the run: a process that stops on its own
    leaves the others waiting at their next collective operation.
    """
    if training_args.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
        return flag
    box = torch.tensor([int(flag)], device=training_args.device)
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return bool(box.item())
