"""What a process started as `python describe_process.py CODE` sees, printed as JSON; then it
exits with CODE (a number, or a message: exit status 1 with the message on stderr, as a script's
SystemExit gives). tests/test_helpers.py compares a plain child with a preloaded one."""

import json
import os
import sys

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import run_qa  # noqa: F401  # isort: skip  # first, as run_qa.py starts (threads, environment)
import torch

print(json.dumps({
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "main": __name__,
    "environment": {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
    "torch_threads": torch.get_num_threads(),
}))  # fmt: skip
code = sys.argv[1]
raise SystemExit(int(code) if code.isdigit() else code)
