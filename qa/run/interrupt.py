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

import signal

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
