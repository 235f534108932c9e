"""What a run records of the code it ran: the commit it started from, not the one at its end."""

import subprocess
from types import SimpleNamespace

import run_qa
from qa.run import outputs
from qa.run.config import parse_arguments


def test_the_recorded_commit_is_the_one_the_run_started_from(tmp_path, monkeypatch):
    """A commit made while a long run trains (its code already loaded) is not credited with the
    run: start_run() reads the checkout's commit, and run_config.json reports that one."""
    answers = {"rev-parse": "aaa111\n", "status": ""}
    real_run = subprocess.run

    def git(command, **kwargs):
        if command[0] != "git":
            return real_run(command, **kwargs)
        return SimpleNamespace(stdout=answers[command[3]])

    monkeypatch.setattr(outputs.subprocess, "run", git)
    outputs.source_commit.cache_clear()
    argv = ["--output_dir", str(tmp_path / "run"), "--do_eval", "--report_to", "none",
            "--keep_freed_memory", "false"]  # fmt: skip
    args = parse_arguments(argv)
    try:
        run_qa.start_run(args)
        answers.update({"rev-parse": "bbb222\n", "status": " M run_qa.py\n"})  # committed meanwhile
        recorded = outputs.run_metadata(args, argv, {})
    finally:
        outputs.source_commit.cache_clear()  # the next caller reads the real checkout
    assert (recorded["git_commit"], recorded["git_uncommitted_changes"]) == ("aaa111", False)
