"""Run a recipe script in a child forked from a Python that has already imported the recipe.

Most of a short test run's time is not the run: a fresh `python run_qa.py` spends about five CPU
seconds importing torch, transformers and datasets before it reads its first argument, and the
suite starts dozens of such runs. A test worker therefore starts one "preloaded" Python
(this file as a script) that imports run_qa.py's modules once and then, for each run asked of it,
forks: the child is a process of its own (own pid, memory, exit status, output), it sets the
run's working directory, environment and argv and runs the script as `python script ...` would,
and the preloaded parent only reports its exit status.

What a fork cannot give a run is a fresh start-up, so PreloadedPython.run() declines (returns
None, and the caller starts a plain child) wherever start-up is what a test may be about: an
environment other than the one the preloaded Python started with (libraries read HF_HOME,
offline flags and caches as they import), or a launcher. No OpenMP thread pool exists in the
parent when it forks (it runs no torch operation), so each child's pool starts as a fresh
process's does, with the thread count the run sets.

Protocol: first, one JSON line on stdout: what importing the recipe set in the environment. Then
one JSON request per line on stdin ({"argv", "cwd", "env", "stdout", "stderr", "timeout"}), one
JSON reply per line on stdout ({"returncode"}).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class PreloadedPython:
    """The test side: one preloaded Python per test process, started on first use."""

    def __init__(self, env: dict):
        self.env = dict(env)
        self.process = None

    def run(self, argv: list[str], env: dict, timeout: float):
        """subprocess.CompletedProcess of `python *argv` run from the root, or None where a
        plain child must run it (see the module's docstring)."""
        if not argv or not argv[0].endswith(".py"):
            return None
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, __file__],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # its import warnings; each child's go to its run
                text=True,
            )
            # What importing the recipe set in the environment (OMP_NUM_THREADS, ...): a test
            # process that imported it too holds the same, and a fresh run would set it again.
            self.set_by_import = json.loads(self.process.stdout.readline())
        if not self.same_start(env):
            return None
        with tempfile.TemporaryDirectory(prefix="preloaded-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            request = {"argv": argv, "cwd": str(ROOT), "env": env, "stdout": str(out),
                       "stderr": str(err), "timeout": timeout}  # fmt: skip
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            reply = self.process.stdout.readline()
            if not reply:
                raise RuntimeError("the preloaded Python ended")
            returncode = json.loads(reply)["returncode"]
            return subprocess.CompletedProcess(
                [sys.executable, *argv],
                returncode,
                out.read_text(errors="replace"),
                err.read_text(errors="replace"),
            )

    def same_start(self, env: dict) -> bool:
        """Whether a run in `env` would import the recipe as the preloaded Python did."""
        ignored = {*self.set_by_import, "PYTEST_CURRENT_TEST"}  # pytest's, read by no library
        for key in self.set_by_import:
            if env.get(key) not in (self.env.get(key), self.set_by_import[key]):
                return False
        return {k: v for k, v in env.items() if k not in ignored} == {
            k: v for k, v in self.env.items() if k not in ignored
        }

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()  # the preloaded Python ends at the end of its input
            self.process.wait(timeout=60)


def run_child(request: dict, set_by_import: dict) -> None:
    """In the forked child: become `python argv...` and never return."""
    import runpy

    import qa.machine.threads as threads

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the child's stdin as long as it lives
    os.dup2(sys.stdin.fileno(), 0)
    # What importing the recipe does as a fresh run_qa.py starts (qa/machine/threads.py first).
    threads.OMP_NUM_THREADS_GIVEN = os.environ.get("OMP_NUM_THREADS")
    for key, value in set_by_import.items():
        os.environ.setdefault(key, value)
    threads.claim_cores()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = list(request["argv"])
    sys.path[0] = str(Path(sys.argv[0]).resolve().parent)
    runpy.run_path(sys.argv[0], run_name="__main__")
    sys.exit(0)


def serve() -> None:
    """The preloaded parent: import, then fork a child per request, one at a time."""
    sys.path[0] = str(ROOT)  # not this file's folder, which no script of the recipe has
    before = dict(os.environ)
    import run_qa  # noqa: F401 - imported for the children
    import search_qa  # noqa: F401

    set_by_import = {k: v for k, v in os.environ.items() if before.get(k) != v}
    sys.stdout.write(json.dumps(set_by_import) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            run_child(request, set_by_import)  # exits through the interpreter, as the script would
        deadline = time.monotonic() + request["timeout"]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        returncode = os.waitstatus_to_exitcode(status)
        sys.stdout.write(json.dumps({"returncode": returncode}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
