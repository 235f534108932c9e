"""The hooks run_qa.py adds to the Trainer's loop, together: the log file, resident memory, and
Ctrl-C or SIGTERM. Each keeps only the loop's side; what it measures or handles lives in its
module (qa/machine/memory.py, qa/run/interrupt.py)."""

import json
import logging
import signal
import threading

from transformers import TrainerCallback

from qa.machine.memory import resident_mib
from qa.run.interrupt import STOP_SIGNALS
from qa.run.ranks import any_process

logger = logging.getLogger("run_qa.callbacks")  # a child of run_qa's logger: lands in train.log


# One line format for the console and train.log.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class LogFile(TrainerCallback):
    """Keeps train.log: our messages, the Trainer's, and every logged metrics dict."""

    def __init__(self, path: str):
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
        for name in ("run_qa", "transformers.trainer"):
            logging.getLogger(name).addHandler(self.handler)
        self.history = logging.getLogger("run_qa.history")
        self.history.propagate = False  # the progress bar already prints these on the console
        self.history.setLevel(logging.INFO)
        self.history.addHandler(self.handler)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.history.info(json.dumps({"step": state.global_step, **logs}))


class MemoryWatch(TrainerCallback):
    """Adds rss_mib to every logged metrics line and notes the resident memory at step `mark`
    and at the end of training, for the growth in between."""

    def __init__(self, mark: int = 100):
        self.mark, self.at_start, self.at_mark, self.at_end = mark, None, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.at_start = resident_mib()  # libraries, data and model: what training adds to

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.mark:
            self.at_mark = resident_mib()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None:
            logs["rss_mib"] = round(resident_mib())

    def on_train_end(self, args, state, control, **kwargs):
        self.at_end = resident_mib()

    def summary(self) -> dict:
        result = {"train_rss_mib_start": round(self.at_start)} if self.at_start else {}
        if self.at_end:
            result["train_rss_mib_end"] = round(self.at_end)
        if self.at_mark and self.at_end:
            result[f"train_rss_mib_step_{self.mark}"] = round(self.at_mark)
            result[f"train_rss_growth_mib_after_step_{self.mark}"] = round(
                self.at_end - self.at_mark
            )
        return result


class EpochsTrained(TrainerCallback):
    """The epochs this process trained, for the FLOPs behind its MFU: with max_steps they are
    not num_train_epochs, and a resumed run trains only what its checkpoint had left."""

    def __init__(self):
        self.first = self.last = None

    def on_step_begin(self, args, state, control, **kwargs):
        # Not on_train_begin: the Trainer loads a resumed checkpoint's state after calling it.
        if self.first is None:
            self.first = state.epoch or 0.0

    def on_train_end(self, args, state, control, **kwargs):
        self.last = state.epoch

    @property
    def epochs(self) -> float | None:
        return None if self.first is None or self.last is None else self.last - self.first


class StopOnInterrupt(TrainerCallback):
    """Ctrl-C or SIGTERM while training: save at the end of the step in progress, then stop
    (qa/run/interrupt.py says why at a step boundary and what happens outside training)."""

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
