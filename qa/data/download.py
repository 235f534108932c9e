"""Check the SQuAD folder, and fill it from the SQuAD site where files are missing (`make data`).

    python -m qa.data.download [--dir FOLDER] [--files train-v2.0.json ...]

The folder is SQUAD_DIR, else ../shared/squad beside the checkout, else the per-user cache
(qa/data/files.py). A folder with its own SHA256SUMS is a local mirror: its files are checked
against it and nothing is downloaded into it. Otherwise every file is checked against the official
sha256, and a missing one is downloaded (SQUAD_BASE_URL, default the SQuAD site) into a temporary
file beside it, checked, and only then renamed into place: an interrupted or bad download never
leaves a file that a later run would read. A download is read no further than the official size
and must finish within SQUAD_DOWNLOAD_TIMEOUT seconds (default: a minute plus a second per 50 kB).
"""

import argparse
import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from tqdm.auto import tqdm

from qa.data.files import MIRROR_SUMS, OFFICIAL_FILES, RECIPE_FILES, squad_dir, url_of

BLOCK = 1 << 16
TIMEOUT_S = 60  # per socket operation: a stalled server fails instead of hanging make
# The whole download's deadline unless SQUAD_DOWNLOAD_TIMEOUT says otherwise: a minute, plus the
# time the file takes at 50 kB/s (a slow link), so that a trickling server cannot hold make for days.
DEADLINE_ENV = "SQUAD_DOWNLOAD_TIMEOUT"
DEADLINE_BASE_S, SLOWEST_BYTES_PER_S = 60, 50_000


class DataFolderError(Exception):
    """The folder cannot be made ready; the message says what to do."""


def download_deadline(size: int) -> float:
    """Seconds one download of `size` bytes may take, all reads together."""
    setting = os.environ.get(DEADLINE_ENV, "").strip()
    if not setting:
        return DEADLINE_BASE_S + size / SLOWEST_BYTES_PER_S
    try:
        seconds = float(setting)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise DataFolderError(
            f"{DEADLINE_ENV}={setting[:40]!r} is not a number of seconds; set it to one (e.g. "
            f"3600) or unset it for the default ({DEADLINE_BASE_S} s plus 1 s per 50 kB)."
        )
    return seconds


class _TooLong(Exception):
    """The server sends more than the official file holds."""


class _TooSlow(Exception):
    """The deadline passed before the file was whole."""


def _blocks(source, limit=None, deadline=None):
    """source's blocks, each from a single read (read1): a trickle cannot stretch one read past
    the deadline. _TooLong past `limit` bytes, _TooSlow after time.monotonic() `deadline`."""
    read = getattr(source, "read1", source.read)
    count = 0
    while block := read(BLOCK):
        count += len(block)
        if limit is not None and count > limit:
            raise _TooLong(f"it sends more than the official file's {limit:,} bytes")
        if deadline is not None and time.monotonic() > deadline:
            raise _TooSlow(f"{count:,} of {limit or 0:,} bytes had come")
        yield block


def _stream(blocks, digest, sink=None, bar=None) -> int:
    """Copy blocks to sink (if any), hashing on the way; the bytes read."""
    count = 0
    for block in blocks:
        digest.update(block)
        if sink is not None:
            sink.write(block)
        if bar is not None:
            bar.update(len(block))
        count += len(block)
    return count


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        _stream(_blocks(handle), digest)
    return digest.hexdigest()


def _fetch(url: str, sink, size: int, timeout: float, seconds: float, label: str):
    """Stream url into sink, no further than `size` bytes and `seconds`; (bytes, digest)."""
    deadline = time.monotonic() + seconds
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=min(timeout, seconds)) as response:
        # http.client's parsed Content-Length (None when absent or malformed); none for file:.
        announced = getattr(response, "length", None) or size
        if announced > size:
            raise _TooLong(f"it announces {announced:,} bytes, the official file has {size:,}")
        with tqdm(total=announced, unit="B", unit_scale=True, desc=label, file=sys.stderr) as bar:
            got = _stream(_blocks(response, size, deadline), digest, sink, bar)
    sink.flush()
    os.fsync(sink.fileno())
    return got, digest


def download(
    url: str,
    target: Path,
    size: int,
    sha256: str,
    timeout: float = TIMEOUT_S,
    deadline_s: float | None = None,
) -> None:
    """Fetch url to target, which appears only once its size and sha256 are right; all of it
    within deadline_s seconds (default: download_deadline(size)).

    Raises DataFolderError naming the URL and the reason; the temporary file is removed."""
    seconds = download_deadline(size) if deadline_s is None else deadline_s
    target.parent.mkdir(parents=True, exist_ok=True)
    # Beside the target, so that os.replace is one rename on the same filesystem; the dot and
    # the suffix keep it away from anything that looks for the file's own name.
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    try:
        try:
            with os.fdopen(descriptor, "wb") as sink:
                got, digest = _fetch(url, sink, size, timeout, seconds, target.name)
        except urllib.error.HTTPError as err:
            raise DataFolderError(f"{url}: HTTP {err.code} {err.reason}") from None
        except urllib.error.URLError as err:
            raise DataFolderError(f"{url}: cannot connect ({err.reason})") from None
        except (OSError, HTTPException) as err:  # reset, timeout, a broken reply
            raise DataFolderError(f"{url}: the download broke off ({err!r})") from None
        except _TooLong as err:  # an endless server would fill the disk
            raise DataFolderError(f"{url}: {err}: this is not that file") from None
        except _TooSlow as err:
            raise DataFolderError(
                f"{url}: not finished within {seconds:g} s ({err}); on a slow link allow more "
                f"with {DEADLINE_ENV}=<seconds>"
            ) from None
        _check(url, got, size, digest.hexdigest(), sha256)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the data is for everyone
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _check(url: str, got: int, size: int, found: str, sha256: str) -> None:
    if got != size:
        raise DataFolderError(
            f"{url}: got {got:,} bytes, the official file has {size:,}: the download was cut "
            "short or is not that file"
        )
    if found != sha256:
        raise DataFolderError(
            f"{url}: sha256 {found}, not the official {sha256}: this is not the official file"
        )


def read_mirror_sums(path: Path) -> dict[str, str]:
    """{file name: sha256} from a `sha256sum` listing."""
    sums = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        name = name.strip().lstrip("*")  # "*name" is sha256sum's binary-mode mark
        if len(digest) != 64 or not name:
            raise DataFolderError(
                f"{path}, line {number}: not '<sha256>  <file name>'; fix the line or delete the "
                "file to check against the official checksums instead."
            )
        sums[name] = digest.lower()
    return sums


def check_mirror(folder: Path, wanted: list[str]) -> str:
    """A folder with its own SHA256SUMS: every file listed there must match; nothing is fetched."""
    sums = read_mirror_sums(folder / MIRROR_SUMS)
    unlisted = [name for name in wanted if name not in sums]
    if unlisted:
        raise DataFolderError(
            f"{folder / MIRROR_SUMS} does not list {', '.join(unlisted)}: this mirror lacks "
            "them. Add them there (with their sha256), or set SQUAD_DIR to another folder."
        )
    for name, digest in sums.items():
        path = folder / name
        if not path.is_file():
            raise DataFolderError(f"{path}: listed in {MIRROR_SUMS} but missing; copy it there.")
        if sha256_file(path) != digest:
            raise DataFolderError(
                f"{path}: its sha256 is not the one {MIRROR_SUMS} lists; copy it again."
            )
    return f"SQuAD data in {folder} verified ({len(sums)} files, against its {MIRROR_SUMS})"


def how_to_fix(folder: Path, missing: list[str]) -> str:
    urls = "\n".join(f"  {url_of(name)}" for name in missing)
    return (
        f"Run `make data` again once the network is there, or download these into {folder}\n"
        f"(their sha256 are in qa/data/files.py and docs/design.md):\n{urls}\n"
        "or set SQUAD_DIR to a folder that holds them (a rebuilt copy needs a SHA256SUMS there)."
    )


def prepare(folder: Path, wanted: list[str]) -> str:
    """Make `folder` hold the wanted files, verified; a line saying so, or DataFolderError."""
    if (folder / MIRROR_SUMS).is_file():
        return check_mirror(folder, wanted)
    missing = []
    for name in wanted:
        official = OFFICIAL_FILES[name]
        path = folder / name
        if not path.exists():
            missing.append(name)
        elif sha256_file(path) != official.sha256:
            raise DataFolderError(
                f"{path}: not the official file (its sha256 differs from {official.sha256}). "
                f"Delete it to download the official one, or, for a copy you rebuilt on purpose, "
                f"list every file's sha256 in {folder / MIRROR_SUMS}."
            )
    for number, name in enumerate(missing):
        official = OFFICIAL_FILES[name]
        seconds = download_deadline(official.size)  # a bad setting: its own one line
        print(f"Downloading {name} ({official.size / 1e6:.1f} MB) from {url_of(name)}")
        try:
            download(
                url_of(name), folder / name, official.size, official.sha256, deadline_s=seconds
            )
        except DataFolderError as err:
            raise DataFolderError(
                f"could not get {name}: {err}. Nothing partial was kept.\n"
                + how_to_fix(folder, missing[number:])
            ) from None
    fetched = f", {len(missing)} downloaded" if missing else ""
    return f"SQuAD data in {folder} verified ({len(wanted)} files, official sha256{fetched})"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, help="the folder (default: SQUAD_DIR, see above)")
    parser.add_argument(
        "--files",
        nargs="+",
        choices=sorted(OFFICIAL_FILES),
        default=list(RECIPE_FILES),
        help=f"the files to check or fetch (default: {' '.join(RECIPE_FILES)})",
    )
    args = parser.parse_args(argv)
    folder = args.dir or squad_dir()
    try:
        line = prepare(folder, args.files)
    except DataFolderError as err:
        raise SystemExit(f"error: {err}") from None
    print(line)
    return line


if __name__ == "__main__":
    main(sys.argv[1:])
