"""Run run_qa.py as a user would, in a child process, for the end-to-end tests."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qa.data.files import squad_dir

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests" / "configs" / "smoke.json"
SQUAD_DIR = (
    squad_dir()
)  # as run_qa.py resolves it: SQUAD_DIR, ../shared/squad, or make data's cache
needs_squad = pytest.mark.skipif(
    not (SQUAD_DIR / "dev-v1.1.json").is_file(), reason=f"no SQuAD data in {SQUAD_DIR}"
)
# Two CPU processes (DDP over gloo), one thread each. Through torchrun: accelerate launch --cpu
# --num_processes 2 starts one process unless MPI is set up (accelerate 1.15).
TWO_CPU_PROCESSES = [
    sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
]  # fmt: skip


def environment():
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "SQUAD_DIR": str(SQUAD_DIR),
        "PYTHONUNBUFFERED": "1",
    }


def command(*flags, config=SMOKE, launcher=None):
    launch = launcher or [sys.executable]
    return [*launch, str(ROOT / "run_qa.py"), str(config), *map(str, flags)]


def run_qa(*flags, check=True, config=SMOKE, launcher=None):
    result = subprocess.run(
        command(*flags, config=config, launcher=launcher),
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and result.returncode != 0:
        pytest.fail(f"run_qa.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def start_qa(*flags, log_path):
    """Start run_qa.py in the background, output to log_path; returns the Popen."""
    log = open(log_path, "w")  # noqa: SIM115 - closed by the caller through the process
    return subprocess.Popen(
        command(*flags),
        cwd=ROOT,
        env=environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
        # A background shell starts children with Ctrl-C ignored; a user's terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
