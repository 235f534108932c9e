"""Ctrl-C or SIGTERM during training: finish the step, save a checkpoint the Trainer's own way, stop.

SIGTERM is what Slurm, Kubernetes and `kill` send before they kill a job (after a grace period),
so it is handled like Ctrl-C. The first signal only sets a flag. At the end of the step in
progress (after the optimizer step and the step counter, never between them) the callback asks
the Trainer to save and to stop, the same control flags its own save_steps use, so the checkpoint
is one the Trainer can resume from exactly. A second signal stops at once without saving (the
last checkpoint stays).

Outside the training steps (loading, tokenising, the final evaluation) nothing is saved half-way,
so there SIGTERM ends the run at once, with one line instead of Python's silent exit -15.
"""

import logging
import signal
import threading

from transformers import TrainerCallback

from qa.ranks import any_process

logger = logging.getLogger("run_qa.interrupt")

STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

OUTSIDE_TRAINING = (
    "Stopped by SIGTERM outside the training steps (nothing was being saved). "
    "Run the same command again: it resumes from the last whole checkpoint, if any."
)


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit with one line; `finally` blocks run, as for any exit. A second
    SIGTERM, should that exit itself hang (at a barrier), kills at once."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(OUTSIDE_TRAINING)


class StopOnInterrupt(TrainerCallback):
    def __init__(self):
        self.requested = False
        self.signal_name = None  # "Ctrl-C" or "SIGTERM", once this process received one
        self.stopped_at = None  # the step saved and stopped at, once it happened
        self._previous = {}  # signal -> the handler to put back when training ends

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}

    def on_train_end(self, args, state, control, **kwargs):
        for signum, previous in self._previous.items():
            if previous is not None:  # None: set outside Python, cannot be put back
                signal.signal(signum, previous)
        self._previous = {}

    def _on_signal(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signal_name = True, STOP_SIGNALS[signum]
        logger.warning(
            "%s: saving a checkpoint at the end of this step, then stopping "
            "(Ctrl-C or SIGTERM again stops at once, without saving).",
            self.signal_name,
        )

    def _agreed(self, args) -> bool:
        """Every process stops at the same step: one signal anywhere stops them all."""
        return any_process(self.requested, args)

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at is None and self._agreed(args):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control
