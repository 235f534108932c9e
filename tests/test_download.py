"""`make data` on a machine without the SQuAD files: qa.data.download against a local HTTP server on
127.0.0.1 standing in for the SQuAD site (good files, cut short, wrong bytes, 404, a server that
dies mid-file), and the folder choice that run_qa.py shares with it. Never the internet."""

import contextlib
import hashlib
import http.server
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import qa.data.download
import qa.data.files
from qa.data.download import DataFolderError, download, prepare
from qa.data.files import OFFICIAL_FILES, OfficialFile
from qa.data.load import resolve_data_path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = Path(os.environ.get("SQUAD_DIR") or qa.data.files.SHARED_SQUAD_DIR)
NAMES = ("train-v1.1.json", "dev-v1.1.json", "dev-v2.0.json")


class Site(http.server.ThreadingHTTPServer):
    """Serves `files` ({name: bytes}); `modes` ({name: how}) makes one file misbehave."""

    daemon_threads = True

    def __init__(self, files):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.modes, self.requests = files, {}, []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/dataset"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet test output
        pass

    def do_GET(self):
        site = self.server
        name = self.path.rsplit("/", 1)[-1]
        site.requests.append(name)
        body, mode = site.files.get(name), site.modes.get(name)
        if body is None or mode == "404":
            self.send_error(404)
            return
        if mode in ("endless", "bigger", "trickle", "badlength"):
            # The client stops reading (what these tests want): the pipe breaks, quietly.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                getattr(self, mode)(body)
            return
        self.send_response(200)
        honest = mode == "short"  # a short file with a matching Content-Length
        half = body[: len(body) // 2]
        self.send_header("Content-Length", str(len(half if honest else body)))
        self.end_headers()
        if mode in ("short", "cut"):
            self.wfile.write(half)
        elif mode == "dies":
            self.wfile.write(half)
            self.wfile.flush()
            # A reset (RST), not a clean close, and no server left for the next file.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            threading.Thread(target=site.shutdown).start()
            self.connection.close()
        elif mode == "stall":
            self.wfile.write(half)
            self.wfile.flush()
            threading.Event().wait(3)
        else:
            self.wfile.write(body)

    ENDLESS_CAP = 64 << 20  # "endless" stops here, so that a client without a limit still ends

    def endless(self, body):
        """The file, then more for as long as the client reads; no Content-Length."""
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
        sent, block = len(body), b"x" * (1 << 16)
        while sent < self.ENDLESS_CAP:
            self.wfile.write(block)
            sent += len(block)
        self.server.sent = sent

    def bigger(self, body):
        """Announces ten times the file's size, and sends that much."""
        self.send_response(200)
        self.send_header("Content-Length", str(10 * len(body)))
        self.end_headers()
        self.wfile.write(body * 10)

    def trickle(self, body):
        """An honest length, then a byte every 50 ms, for 5 s at most (a client with no
        deadline still ends, cut short)."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for byte in body[:100]:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            threading.Event().wait(0.05)

    def badlength(self, body):
        """A Content-Length that is not a number, then the whole file and a close."""
        self.send_response(200)
        self.send_header("Content-Length", "lots")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def files(monkeypatch):
    """Small stand-ins for the three recipe files, and the official table pointed at them."""
    payloads = {
        "train-v1.1.json": (FIXTURES / "squad-v1.1-tiny.json").read_bytes(),
        "dev-v1.1.json": (FIXTURES / "squad-v1.1-tiny.json").read_bytes()[:-1] + b"\n ",
        "dev-v2.0.json": (FIXTURES / "squad-v2.0-tiny.json").read_bytes(),
    }
    for name, body in payloads.items():
        official = OfficialFile(name, len(body), hashlib.sha256(body).hexdigest(), "stand-in")
        monkeypatch.setitem(OFFICIAL_FILES, name, official)
    return payloads


@pytest.fixture
def site(files, monkeypatch):
    server = Site(dict(files))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SQUAD_BASE_URL", server.url)
    yield server
    server.shutdown()
    server.server_close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.slow  # starts a server
def test_missing_files_are_downloaded_verified_and_kept(site, files, tmp_path, capsys):
    folder = tmp_path / "squad"
    line = prepare(folder, list(NAMES))
    assert "verified (3 files, official sha256, 3 downloaded)" in line
    assert leftovers(folder) == sorted(NAMES)  # no temporary file left
    for name in NAMES:
        assert (folder / name).read_bytes() == files[name]
        assert (folder / name).stat().st_mode & 0o444 == 0o444  # readable by all, as cp leaves it
    assert "dev-v2.0.json" in capsys.readouterr().err  # tqdm's bar, on stderr
    # Verified and present: the next run asks the server for nothing.
    site.requests.clear()
    assert "downloaded" not in prepare(folder, list(NAMES))
    assert site.requests == []


@pytest.mark.slow
def test_only_the_missing_file_is_fetched(site, files, tmp_path):
    folder = tmp_path / "squad"
    folder.mkdir()
    for name in NAMES[:2]:
        (folder / name).write_bytes(files[name])
    assert "1 downloaded" in prepare(folder, list(NAMES))
    assert site.requests == ["dev-v2.0.json"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, reason",
    [
        ("404", "HTTP 404"),
        ("short", "got 1,"),  # half the bytes, honestly announced
        ("cut", "got 1,"),  # Content-Length of the whole file, then the connection closes
        ("wrong", "not the official"),
        ("dies", "dev-v1.1.json"),
    ],
)
def test_a_bad_download_keeps_nothing_and_says_what_to_do(site, files, tmp_path, mode, reason):
    folder = tmp_path / "squad"
    if mode == "wrong":  # the right size, other bytes
        body = files["dev-v1.1.json"]
        site.files["dev-v1.1.json"] = body[:-2] + b"xx"
    else:
        site.modes["dev-v1.1.json"] = mode
    with pytest.raises(DataFolderError) as caught:
        prepare(folder, list(NAMES))
    message = str(caught.value)
    assert reason in message, message
    assert "could not get dev-v1.1.json" in message and "Nothing partial was kept" in message
    # One message: the URLs still missing, the folder, and SQUAD_DIR.
    assert f"{site.url}/dev-v1.1.json" in message and f"{site.url}/dev-v2.0.json" in message
    assert f"{site.url}/train-v1.1.json" not in message  # that one arrived
    assert str(folder) in message and "SQUAD_DIR" in message
    assert leftovers(folder) == ["train-v1.1.json"]  # no partial dev file, no temporary file


@pytest.mark.slow
def test_a_server_that_is_gone_reads_as_offline(site, tmp_path):
    site.modes["train-v1.1.json"] = "dies"
    with pytest.raises(DataFolderError, match="could not get train-v1.1.json"):
        prepare(tmp_path / "squad", list(NAMES))
    site.shutdown()  # returns once the handler's own shutdown has stopped the server
    site.server_close()  # and the port: nothing listens there now
    with pytest.raises(DataFolderError, match="cannot connect") as caught:
        prepare(tmp_path / "squad", list(NAMES))
    assert all(f"{site.url}/{name}" in str(caught.value) for name in NAMES)
    assert leftovers(tmp_path / "squad") == []


@pytest.mark.slow
def test_a_stalled_server_times_out_and_keeps_nothing(site, files, tmp_path):
    site.modes["dev-v2.0.json"] = "stall"
    official = OFFICIAL_FILES["dev-v2.0.json"]
    with pytest.raises(DataFolderError, match="broke off"):
        download(
            f"{site.url}/dev-v2.0.json",
            tmp_path / "dev-v2.0.json",
            official.size,
            official.sha256,
            timeout=0.5,
        )
    assert leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["endless", "bigger"])
def test_a_server_sending_past_the_official_size_is_cut_off(site, files, tmp_path, mode):
    """An endless server would fill the disk: reading stops one block past the official size."""
    site.modes["dev-v2.0.json"] = mode
    with pytest.raises(DataFolderError) as caught:
        prepare(tmp_path / "squad", list(NAMES))
    message = str(caught.value)
    size = f"{len(files['dev-v2.0.json']):,}"
    assert f"could not get dev-v2.0.json: {site.url}/dev-v2.0.json: it " in message, message
    assert f"the official file has {size}" in message or f"official file's {size} bytes" in message
    assert "\n" not in message.split(". Nothing partial")[0]  # the reason is one line
    assert leftovers(tmp_path / "squad") == sorted(NAMES[:2])


@pytest.mark.slow
def test_a_trickling_server_meets_the_overall_deadline(site, files, tmp_path, monkeypatch):
    """A byte every 50 ms never trips the per-read timeout; SQUAD_DOWNLOAD_TIMEOUT ends it."""
    site.modes["dev-v2.0.json"] = "trickle"
    monkeypatch.setenv("SQUAD_DOWNLOAD_TIMEOUT", "0.5")
    with pytest.raises(DataFolderError) as caught:
        prepare(tmp_path / "squad", list(NAMES))
    message = str(caught.value)
    assert "dev-v2.0.json: not finished within 0.5 s (" in message, message
    assert "SQUAD_DOWNLOAD_TIMEOUT=<seconds>" in message and "Nothing partial" in message
    assert leftovers(tmp_path / "squad") == sorted(NAMES[:2])


@pytest.mark.slow
def test_a_malformed_content_length_is_not_a_traceback(site, files, tmp_path):
    site.modes["dev-v2.0.json"] = "badlength"  # the bytes are right: the download is kept
    assert "3 downloaded" in prepare(tmp_path / "squad", list(NAMES))


def test_the_overall_deadline_scales_with_the_size_and_can_be_set(monkeypatch):
    monkeypatch.delenv("SQUAD_DOWNLOAD_TIMEOUT", raising=False)
    assert qa.data.download.download_deadline(0) == 60
    train = OFFICIAL_FILES["train-v1.1.json"].size  # 30 MB: 60 s + 606 s at 50 kB/s
    assert 600 < qa.data.download.download_deadline(train) < 700
    monkeypatch.setenv("SQUAD_DOWNLOAD_TIMEOUT", " 7200 ")
    assert qa.data.download.download_deadline(train) == 7200


@pytest.mark.parametrize("setting", ["soon", "0", "-5", "nan", "inf"])
def test_a_bad_deadline_setting_is_one_line(files, tmp_path, monkeypatch, setting):
    monkeypatch.setenv("SQUAD_BASE_URL", "http://127.0.0.1:9/none")
    monkeypatch.setenv("SQUAD_DOWNLOAD_TIMEOUT", setting)
    with pytest.raises(SystemExit) as caught:
        qa.data.download.main(["--dir", str(tmp_path / "squad")])
    assert str(caught.value) == (
        f"error: SQUAD_DOWNLOAD_TIMEOUT={setting!r} is not a number of seconds; set it to one "
        "(e.g. 3600) or unset it for the default (60 s plus 1 s per 50 kB)."
    )
    assert leftovers(tmp_path / "squad") == []


@pytest.mark.slow
def test_ctrl_c_mid_download_keeps_nothing(site, files, tmp_path, monkeypatch):
    class Interrupting(qa.data.download.tqdm):
        def update(self, n=1):
            raise KeyboardInterrupt

    monkeypatch.setattr(qa.data.download, "tqdm", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "squad", list(NAMES))
    assert leftovers(tmp_path / "squad") == []


@pytest.mark.slow  # reads ../shared and starts a server
def test_the_committed_official_sha256_of_dev_v2_is_right(tmp_path, monkeypatch):
    """dev-v2.0.json in ../shared/squad is byte-identical to the official file: served as the
    SQuAD site would, it passes against the sha256 committed in qa/data/files.py."""
    source = SHARED / "dev-v2.0.json"
    if not source.is_file():
        pytest.skip(f"no {source}")
    server = Site({"dev-v2.0.json": source.read_bytes()})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SQUAD_BASE_URL", server.url)
    try:
        assert "1 downloaded" in prepare(tmp_path, ["dev-v2.0.json"])
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "dev-v2.0.json").stat().st_size == 4_370_528


# --- without a server: the folder rules ----------------------------------------------------


def test_a_folder_with_its_own_sha256sums_is_checked_against_it_only(files, tmp_path, monkeypatch):
    """A local mirror (rebuilt files, its own SHA256SUMS) wins over the official checksums, and
    nothing is fetched into it (the base URL leads nowhere)."""
    monkeypatch.setenv("SQUAD_BASE_URL", "http://127.0.0.1:9/none")
    rebuilt = {name: body + b" " for name, body in files.items()}  # not the official bytes
    for name, body in rebuilt.items():
        (tmp_path / name).write_bytes(body)
    (tmp_path / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in rebuilt.items())
    )
    assert "against its SHA256SUMS" in prepare(tmp_path, list(NAMES))
    (tmp_path / "dev-v1.1.json").write_bytes(b"{}")
    with pytest.raises(DataFolderError, match="dev-v1.1.json: its sha256 is not the one"):
        prepare(tmp_path, list(NAMES))
    with pytest.raises(DataFolderError, match="does not list train-v2.0.json"):
        prepare(tmp_path, ["train-v2.0.json"])


def test_a_bad_sha256sums_line_is_named(tmp_path):
    (tmp_path / "SHA256SUMS").write_text("abc dev-v1.1.json\n")
    with pytest.raises(DataFolderError, match=r"SHA256SUMS, line 1"):
        prepare(tmp_path, ["dev-v1.1.json"])


def test_a_file_that_is_not_the_official_one_is_left_alone(files, tmp_path, monkeypatch):
    monkeypatch.setenv("SQUAD_BASE_URL", "http://127.0.0.1:9/none")
    (tmp_path / "dev-v1.1.json").write_bytes(b"mine")
    with pytest.raises(DataFolderError, match="not the official file") as caught:
        prepare(tmp_path, ["dev-v1.1.json"])
    assert "SHA256SUMS" in str(caught.value)
    assert (tmp_path / "dev-v1.1.json").read_bytes() == b"mine"


def test_offline_is_one_message_naming_the_urls_the_folder_and_squad_dir(
    files, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SQUAD_BASE_URL", "http://127.0.0.1:9/none")  # the discard port: refused
    monkeypatch.setenv("SQUAD_DIR", str(tmp_path / "squad"))
    with pytest.raises(SystemExit) as caught:
        qa.data.download.main([])
    message = str(caught.value)
    assert (
        message.startswith("error: could not get train-v1.1.json") and "cannot connect" in message
    )
    for name in NAMES:
        assert f"http://127.0.0.1:9/none/{name}" in message
    assert str(tmp_path / "squad") in message and "SQUAD_DIR" in message
    assert leftovers(tmp_path / "squad") == []


def test_without_squad_dir_or_a_mirror_the_cache_is_used_by_both(tmp_path, monkeypatch):
    """make data fills the folder that run_qa.py then reads: the per-user cache."""
    monkeypatch.delenv("SQUAD_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(qa.data.files, "SHARED_SQUAD_DIR", tmp_path / "no-mirror")
    cache = tmp_path / "cache" / "bert-squad-recipe" / "squad"
    assert qa.data.files.squad_dir() == cache
    assert resolve_data_path("$SQUAD_DIR/dev-v1.1.json") == str(cache / "dev-v1.1.json")
    (tmp_path / "no-mirror").mkdir()  # a mirror beside the checkout wins over the cache
    assert qa.data.files.squad_dir() == tmp_path / "no-mirror"
    assert resolve_data_path("${SQUAD_DIR}/x.json") == str(tmp_path / "no-mirror" / "x.json")
    monkeypatch.setenv("SQUAD_DIR", str(tmp_path / "mine"))  # and SQUAD_DIR over both
    assert qa.data.files.squad_dir() == tmp_path / "mine"


@pytest.mark.slow  # copies the checkout, starts a server, reads ../shared
def test_make_data_in_a_fresh_checkout_fills_the_cache(tmp_path):
    """A checkout with no ../shared beside it, SQUAD_DIR unset, the local server as the SQuAD
    site: `make data` downloads, verifies and reports the cache folder, and run_qa.py's path
    resolution in that checkout points at it.

    Only dev-v2.0.json here is the official file; the two v1.1 files served are the rebuilt
    copies of ../shared/squad, so in the copy (not in the repository) their two table entries
    are set to those files' sizes and sha256. The venv is this checkout's (a fresh one is
    `make setup`, two minutes of pip)."""
    if not all((SHARED / name).is_file() for name in NAMES):
        pytest.skip(f"no SQuAD files in {SHARED}")
    clone = tmp_path / "checkout"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in listed:
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    assert not (tmp_path / "shared").exists()
    table = clone / "qa" / "data" / "files.py"
    text = table.read_text()
    for name in NAMES[:2]:
        official, body = OFFICIAL_FILES[name], (SHARED / name).read_bytes()
        text = text.replace(official.sha256, hashlib.sha256(body).hexdigest())
        text = text.replace(f"{official.size:_}", str(len(body)))
    table.write_text(text)

    server = Site({name: (SHARED / name).read_bytes() for name in NAMES})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    venv = ROOT / ".venv"
    env = {k: v for k, v in os.environ.items() if k not in ("SQUAD_DIR", "PYTHONPATH")}
    env.update(SQUAD_BASE_URL=server.url, XDG_CACHE_HOME=str(tmp_path / "cache"))
    try:
        # -o: the venv's stamp is taken as up to date (the copy's files are newer than it).
        made = subprocess.run(
            ["make", "--no-print-directory", "-o", f"{venv}/.installed", f"VENV={venv}", "data"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert made.returncode == 0, made.stdout + made.stderr
    cache = tmp_path / "cache" / "bert-squad-recipe" / "squad"
    assert f"SQuAD data in {cache} verified (3 files, official sha256, 3 downloaded)" in made.stdout
    assert sorted(server.requests) == sorted(NAMES)
    assert leftovers(cache) == sorted(NAMES)
    resolved = subprocess.run(
        [
            sys.executable,
            "-c",
            "import qa.data.load as d; print(d.__file__);"
            "print(d.resolve_data_path('$SQUAD_DIR/train-v1.1.json'))",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert resolved == [str(clone / "qa" / "data" / "load.py"), str(cache / "train-v1.1.json")]
