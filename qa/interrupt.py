"""Ctrl-C during training: finish the step, save a checkpoint the Trainer's own way, stop.

The first Ctrl-C only sets a flag. At the end of the step in progress (after the optimizer step
and the step counter, never between them) the callback asks the Trainer to save and to stop, the
same control flags its own save_steps use, so the checkpoint is one the Trainer can resume from
exactly. A second Ctrl-C stops at once without saving (the last checkpoint stays).
"""

import logging
import signal
import threading

import torch
from transformers import TrainerCallback

logger = logging.getLogger("run_qa.interrupt")


class StopOnInterrupt(TrainerCallback):
    def __init__(self):
        self.requested = False
        self.stopped_at = None  # the step saved and stopped at, once it happened
        self._previous = None

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def on_train_end(self, args, state, control, **kwargs):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_sigint(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning(
            "Ctrl-C: saving a checkpoint at the end of this step, then stopping "
            "(Ctrl-C again stops at once, without saving)."
        )

    def _agreed(self, args) -> bool:
        """Every process stops at the same step: one Ctrl-C anywhere stops them all."""
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if args.world_size > 1 and distributed:
            flag = torch.tensor([int(self.requested)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            return bool(flag.item())
        return self.requested

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at is None and self._agreed(args):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control
