"""StopOnInterrupt without a training run: the flags it sets, and two processes agreeing."""

import os
import signal
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp
from transformers import TrainerControl, TrainerState

from qa.run.callbacks import StopOnInterrupt
from qa.run.interrupt import exit_on_sigterm

ONE = SimpleNamespace(world_size=1, device=torch.device("cpu"))


def _unhandled(signum, frame):
    pytest.fail(f"{signal.Signals(signum).name} reached the handler from before training")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_first_ctrl_c_or_sigterm_asks_the_trainer_to_save_and_stop_at_the_step_end(signum):
    callback, control, state = StopOnInterrupt(), TrainerControl(), TrainerState()
    # Before training, a handler that fails the test (Python's own would end the test session).
    previous = {s: signal.signal(s, _unhandled) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        callback.on_train_begin(ONE, state, control)
        try:
            state.global_step = 3
            callback.on_step_end(ONE, state, control)
            assert not (control.should_save or control.should_training_stop)
            os.kill(os.getpid(), signum)  # handled: a flag, no KeyboardInterrupt
            assert callback.requested and callback.stopped_at is None
            assert (
                callback.signal_name == {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}[signum]
            )
            state.global_step = 4
            callback.on_step_end(ONE, state, control)
            assert control.should_save and control.should_training_stop
            assert callback.stopped_at == 4
            with pytest.raises(KeyboardInterrupt):  # a second one, of either kind, stops at once
                os.kill(os.getpid(), signal.SIGINT if signum == signal.SIGTERM else signal.SIGTERM)
        finally:
            callback.on_train_end(ONE, state, control)
        assert signal.getsignal(signal.SIGINT) is signal.getsignal(signal.SIGTERM) is _unhandled
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_sigterm_outside_training_exits_with_one_line():
    previous = signal.getsignal(signal.SIGTERM)
    exit_on_sigterm()
    try:
        with pytest.raises(SystemExit, match=r"^Stopped by SIGTERM outside the training steps"):
            os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # a second one kills at once
    finally:
        signal.signal(signal.SIGTERM, previous)


def _agree(rank, port, results):
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        callback = StopOnInterrupt()
        args = SimpleNamespace(world_size=2, device=torch.device("cpu"))
        first = callback._agreed(args)  # nobody pressed Ctrl-C yet
        callback.requested = rank == 1  # only process 1 got it
        results[rank] = (first, callback._agreed(args))
    finally:
        torch.distributed.destroy_process_group()


def test_a_ctrl_c_in_one_process_stops_every_process_at_the_same_step():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        # tests/conftest.py says why forkserver.
        mp.start_processes(_agree, args=(port, results), nprocs=2, start_method="forkserver")
        assert dict(results) == {0: (False, True), 1: (False, True)}
