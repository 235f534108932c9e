"""run_qa.py whose training loss turns NaN in a chosen optimizer step, as a diverging run's does.

    python tests/helpers/loss_goes_nan.py STEP RANK run_qa.py CONFIG [flags ...]

From optimizer step STEP on (the first is 1) the loss is NaN on the process of rank RANK (or on
every process: "all"); everything else is run_qa.py as it is, run as a script.
"""

import os
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # where run_qa.py lives
import qa.machine.threads  # noqa: F401, E402  # before torch, as run_qa.py does
import trainer_qa  # noqa: E402

step, rank, script = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.argv = [script, *sys.argv[4:]]
compute_loss = trainer_qa.QuestionAnsweringTrainer.compute_loss


def loss_that_goes_nan(self, model, inputs, *args, **kwargs):
    loss = compute_loss(self, model, inputs, *args, **kwargs)
    here = rank in ("all", os.environ.get("RANK", "0"))
    if model.training and here and self.state.global_step + 1 >= step:
        return loss * float("nan")  # still a graph: the backward runs, with NaN gradients
    return loss


trainer_qa.QuestionAnsweringTrainer.compute_loss = loss_that_goes_nan
runpy.run_path(script, run_name="__main__")
