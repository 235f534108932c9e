"""A folder the run cannot write is refused before anything is loaded."""

import os
import shutil
import subprocess

import pytest
from recipe_runner import ROOT, command, environment

# Were data or model loaded before the folder check, these would be the errors seen instead.
NOTHING_TO_LOAD = ["--train_file", "/absent/train.json", "--model_name_or_path", "/absent"]


def refused(*flags, prefix=()):
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
