"""The recipe's library: what run_qa.py and the tools in tools/ share.

Installed (editable) by `make setup`, so the tools, the bench and the tests import it as `qa.x`
without editing sys.path. The three design scripts stay at the top level: run_qa.py (the recipe),
trainer_qa.py (the Trainer subclass) and utils_qa.py (post-processing's entry point, a thin
re-export of qa/postprocess.py).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: configs/, .cache/, runs/
