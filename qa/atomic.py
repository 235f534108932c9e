"""Writing results so that a crash never leaves half a file: write beside, then rename."""

import json
import os
import shutil
import tempfile
from contextlib import contextmanager

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str):
    """A temporary path beside `path` to write to; renamed onto `path` only if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes files private; results are not
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


@contextmanager
def atomic_folder(path: str):
    """A new folder beside `path` to fill; it replaces `path` whole only if the block succeeds."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp makes folders private
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text_atomic(path: str, text: str) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as out:
        out.write(text)


def write_json_atomic(path: str, data, indent: int | None = 2) -> None:
    write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
