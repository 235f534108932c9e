"""A folder the run cannot write is refused before anything is loaded; a disk that fills while a
checkpoint is saved stops the run with one line, and the same command resumes once there is room."""

import errno
import json
import os
import re
import shutil
import signal
import subprocess

import pytest
import safetensors
import transformers.modeling_utils
from transformers import TrainerState

from helpers.recipe_runner import (
    ROOT,
    SQUAD_DIR,
    command,
    environment,
    needs_squad,
    refusal,
    run_qa,
    tiny_model,
)
from qa.run.checkpoints import checkpoint_problem

# 24 questions (29 windows), batch 8: 4 steps, a checkpoint after each; evaluated at the end.
STEPS = ["--max_train_samples", 24, "--per_device_train_batch_size", 8, "--save_strategy",
         "steps", "--save_steps", 1, "--eval_strategy", "no", "--report_to", "none"]  # fmt: skip
# Were data or model loaded before the folder check, these would be the errors seen instead.
NOTHING_TO_LOAD = ["--train_file", "/absent/train.json", "--model_name_or_path", "/absent"]


def refused(*flags, prefix=()):
    """The line a run is refused with; in this process, but as a child under a `prefix`."""
    if not prefix:
        return refusal(*NOTHING_TO_LOAD, *flags)
    result = subprocess.run(
        [*prefix, *command(*NOTHING_TO_LOAD, *flags)],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("setting", ["output_dir", "results_dir"])
def test_a_folder_under_a_file_is_refused_before_loading(tmp_path, setting):
    """A path that cannot be created: a regular file stands where a folder should be."""
    (tmp_path / "file").write_text("not a folder")
    folder = tmp_path / "file" / "run"
    others = ["--output_dir", tmp_path / "run"] if setting == "results_dir" else []
    line = refused(*others, f"--{setting}", folder)
    assert line == (
        f"error: {setting} {folder} cannot be created: {tmp_path / 'file'} is a file, not a "
        f"folder. Choose another {setting}."
    )
    assert not (tmp_path / "run").exists()


@pytest.fixture
def mounted(tmp_path):
    """mount(size, options) -> a fresh tmpfs; skips where mounting is not permitted (not root,
    or a container without the capability). Unmounted at the end."""
    points = []

    def mount(size: str, options: str = "") -> str:
        point = tmp_path / f"disk{len(points)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(point)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        points.append(point)
        return point

    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    yield mount
    for point in points:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_read_only_filesystem_is_refused_before_loading(mounted):
    """A filesystem mounted read-only refuses even root: EROFS."""
    disk = mounted("1m", ",ro")
    line = refused("--output_dir", disk / "run")
    assert line.startswith(f"error: output_dir {disk / 'run'} cannot be written ({disk}: ")
    assert "Read-only file system" in line


def without_root_override() -> list[str]:
    """A command prefix under which this user obeys file modes: none for a user; for root,
    setpriv dropping the capabilities that let root write anywhere."""
    if os.geteuid() != 0:
        return []
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    if shutil.which("setpriv") is None or subprocess.run([*drop, "true"]).returncode != 0:
        pytest.skip("root, and setpriv cannot drop its override of file modes here")
    return drop


@pytest.mark.slow  # starts a fresh interpreter (docs/design.md: The test suite)
def test_a_folder_without_write_permission_is_refused_before_loading(tmp_path):
    """A folder whose mode forbids writing (555), as a user (or root without its override):
    EACCES."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)  # whatever the umask
    try:
        line = refused("--output_dir", locked / "run", prefix=without_root_override())
    finally:
        locked.chmod(0o755)
    assert line.startswith(f"error: output_dir {locked / 'run'} cannot be written ({locked}: ")
    assert "Permission denied" in line


def half_then_full(path, data: bytes):
    """What a write that fills the disk leaves: part of the file, then ENOSPC."""
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])


@pytest.mark.slow
@needs_squad
@pytest.mark.parametrize("failing", ["weights", "trainer_state"])
def test_a_full_disk_while_saving_stops_with_one_line_and_the_same_command_resumes(
    tmp_path, monkeypatch, caplog, failing
):
    """In-process, the second checkpoint's weights (the first file written) or its
    trainer_state.json (the last, after the weights, optimizer and random states) fail with
    the errors safetensors and Python give on a full disk. The tiny model and the smoke
    config's question files, as a run_qa() child gets them."""
    import run_qa

    monkeypatch.setenv("SQUAD_DIR", str(SQUAD_DIR))
    output = tmp_path / "run"
    # No progress bar: the interrupted run's would be left on the test run's terminal.
    flags = ["--output_dir", output, "--features_cache_dir", tmp_path / "cache"]
    argv = command(*STEPS, *flags, "--disable_tqdm", "true")[2:]
    second = str(output / "checkpoint-2")
    real_weights, real_state = transformers.modeling_utils.safe_save_file, TrainerState.save_to_json

    def weights(tensors, filename, metadata=None):
        if not filename.startswith(second):
            return real_weights(tensors, filename, metadata=metadata)
        half_then_full(filename, b"\0" * 4096)
        raise safetensors.SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    def state(self, json_path):
        if not json_path.startswith(second):
            return real_state(self, json_path)
        half_then_full(json_path, json.dumps({"global_step": 2}).encode())
        raise OSError(errno.ENOSPC, "No space left on device")

    sigint = signal.getsignal(signal.SIGINT)  # the interrupted run leaves its Ctrl-C handler
    with monkeypatch.context() as full:
        if failing == "weights":
            full.setattr(transformers.modeling_utils, "safe_save_file", weights)
        else:
            full.setattr(TrainerState, "save_to_json", state)
        with pytest.raises(SystemExit) as stopped:
            run_qa.main(argv)
    signal.signal(signal.SIGINT, sigint)
    message = str(stopped.value.code)
    assert message.startswith(f"error: no space left on the disk while writing {output} (")
    assert re.search(r"\((\d+ MiB|\d+\.\d GiB) free of (\d+ MiB|\d+\.\d GiB) there\)", message)
    assert "run the same command again" in message and "\n" not in message
    assert checkpoint_problem(second) is not None
    assert checkpoint_problem(str(output / "checkpoint-1")) is None

    caplog.clear()
    with caplog.at_level("INFO", logger="run_qa"):
        results = run_qa.main(argv)  # the disk has room again
    why = "no trainer_state.json" if failing == "weights" else "trainer_state.json does not parse"
    assert f"Checkpoint {second} is incomplete ({why}" in caplog.text
    assert f"Resuming training from {output / 'checkpoint-1'}" in caplog.text
    assert checkpoint_problem(second) is None and results["train_examples"] == 24
    assert (output / "all_results.json").is_file()


@pytest.mark.slow
@needs_squad
def test_a_real_full_disk_mid_checkpoint_and_the_same_command_once_it_has_room(mounted):
    """A tmpfs with room for one checkpoint and the next one's weights: the second fails in
    torch.save of its optimizer state, which says nothing of space; the free space does."""
    weights = os.path.getsize(tiny_model() / "model.safetensors")  # the model run_qa trains
    # A checkpoint: the weights and Adam's two moments, about 3 x the weights.
    disk = mounted(f"{5 * weights}")
    output = disk / "run"
    first = run_qa(*STEPS, "--output_dir", output, check=False)
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Traceback" not in first.stdout + first.stderr
    # The one error line (the progress bar redraws itself below it as the process exits).
    [line] = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: no space left on the disk while writing {output} (")
    assert re.search(r"\(\d+ MiB free of \d+ MiB there\)", line)
    assert checkpoint_problem(str(output / "checkpoint-1")) is None
    assert checkpoint_problem(str(output / "checkpoint-2")) == "no trainer_state.json"
    assert (output / "checkpoint-2" / "model.safetensors").is_file()  # it failed after them

    subprocess.run(["mount", "-o", f"remount,size={16 * weights}", str(disk)], check=True)
    resumed = run_qa(*STEPS, "--output_dir", output)
    log = resumed.stdout + resumed.stderr
    assert f"Checkpoint {output / 'checkpoint-2'} is incomplete (no trainer_state.json)" in log
    assert f"Resuming training from {output / 'checkpoint-1'}" in log
    assert (output / "all_results.json").is_file() and "Traceback" not in log
