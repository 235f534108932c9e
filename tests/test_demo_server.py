"""The demo's HTTP API without a browser: limits, bad requests, and a soak under load and abuse."""

import concurrent.futures
import http.client
import json
import random
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers.recipe_runner import ROOT, environment, tiny_model

pytestmark = pytest.mark.slow  # a demo server process per test module, real sockets

BODY_TIMEOUT = 3  # demo_qa.BODY_TIMEOUT_SECONDS
QUESTION_LIMIT = 64  # qa.data.windows.MAX_QUESTION_TOKENS; the bundled model's window fits it
CONTEXT = "The Denver Broncos beat the Carolina Panthers 24-10 to win Super Bowl 50 in 2016."


def question_of(tokens: int) -> str:
    return " ".join(["broncos"] * (tokens - 1) + ["?"])  # one WordPiece token per word


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """tools/demo_qa.py on the tiny test model (no training needed); (url, process, log path)."""
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tools/demo_qa.py"),
                str(tiny_model()),
                "--port",
                "0",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment(),
            cwd=ROOT,
        )
    deadline = time.monotonic() + 180
    while "Demo of " not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("demo did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.2)
    line = next(li for li in log.read_text().splitlines() if li.startswith("Demo of "))
    url = line.split(" on ", 1)[1].split()[0].rstrip("/") + "/"
    yield url, process, log
    process.terminate()
    process.wait(timeout=30)


def post(url, body: bytes, timeout=60):
    request = urllib.request.Request(
        url + "api/answer", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def ask(url, question, context=CONTEXT):
    return post(url, json.dumps({"context": context, "question": question}).encode())


def test_question_at_the_token_limit_is_answered_one_over_is_refused(demo):
    url, _, log = demo
    status, body = ask(url, question_of(QUESTION_LIMIT))
    assert status == 200 and "text" in body
    status, body = ask(url, question_of(QUESTION_LIMIT + 1))
    assert status == 400
    assert body["error"] == (
        f"The question has {QUESTION_LIMIT + 1} tokens; the demo takes up to {QUESTION_LIMIT} "
        "(a sentence or two). Put long text in the passage."
    )


def test_a_pasted_paragraph_as_question_gets_a_400_not_a_dropped_connection(demo):
    url, process, log = demo
    pasted = " ".join(["The Broncos beat the Panthers in Santa Clara."] * 625)  # 5,000 words
    began = time.monotonic()
    status, body = ask(url, pasted)
    assert status == 400 and "up to 64" in body["error"] and time.monotonic() - began < 10
    assert ask(url, "Who won Super Bowl 50?")[0] == 200  # still answering
    assert process.poll() is None and "Traceback" not in log.read_text()


# --- under load and abuse ---------------------------------------------------------------------

BAD_STATUSES = range(400, 500)


def raw_request(url, head: bytes, body: bytes = b"", hold_open=False, timeout=30):
    """Send bytes as they are (lengths may lie); (status, JSON body, seconds to the answer)."""
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    began = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
    return response.status, json.loads(data or b"null"), time.monotonic() - began


def head(length: str | None = None, extra: str = "") -> bytes:
    lines = ["POST /api/answer HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"Content-Length: {length}"] if length is not None else []
    lines += [extra] if extra else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def body_request(body: bytes):
    return head(str(len(body))), body


VALID = json.dumps({"context": CONTEXT, "question": "Who won Super Bowl 50?"}).encode()
# name -> (head, body) of one request; every one but "valid" must get a 4xx quickly
KINDS = {
    "valid": body_request(VALID),
    "missing-question": body_request(json.dumps({"context": CONTEXT}).encode()),
    "missing-context": body_request(json.dumps({"question": "Who won?"}).encode()),
    "wrong-types": body_request(json.dumps({"context": ["x"], "question": 5}).encode()),
    "array": body_request(b"[1, 2]"),
    "not-json": body_request(b"context=x&question=y"),
    "not-utf8": body_request(b'{"context": "caf\xe9", "question": "Who?"}'),
    "deeply-nested": body_request(b"[" * 100_000 + b"]" * 100_000),
    "oversized": (head(str(4 * 1024**3)), b""),  # announces 4 GiB, sends nothing
    "just-over-the-limit": body_request(b" " * (256 * 1024 + 1)),
    "negative-length": (head("-1"), b""),
    "length-not-a-number": (head("lots"), VALID),
    "no-length": (head(None), VALID),
    "chunked": (head(None, "Transfer-Encoding: chunked"), b"5\r\nhello\r\n0\r\n\r\n"),
    "lying-length": (head("2000"), VALID[:40]),  # announces more than it sends, then waits
}


def rss_mib(pid) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1)) / 1024


def test_soak_keeps_answering_refuses_abuse_quickly_and_holds_its_memory(demo):
    url, process, log = demo
    # Warm up: the first answers and refusals allocate what later ones reuse.
    for kind in list(KINDS) * 2:
        raw_request(url, *KINDS[kind])
    before = rss_mib(process.pid)

    # A bounded loop: 480 requests from local clients, 8 at a time, a third of them valid.
    plan = [k for i in range(24) for k in (["valid"] * 6 + [k for k in KINDS if k != "valid"])]
    random.Random(0).shuffle(plan)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda kind: (kind, *raw_request(url, *KINDS[kind])), plan))

    assert len(outcomes) == len(plan) == 480
    for kind, status, body, seconds in outcomes:
        if kind == "valid":
            assert status == 200 and body["text"] is not None, (kind, status, body)
        else:
            assert status in BAD_STATUSES and body["error"], (kind, status, body)
            assert seconds < 5, (kind, seconds)
    statuses = {kind: status for kind, status, _, _ in outcomes}
    assert statuses["oversized"] == statuses["just-over-the-limit"] == 413
    assert statuses["negative-length"] == statuses["length-not-a-number"] == 400
    assert statuses["lying-length"] == 408 and statuses["no-length"] == 411

    assert raw_request(url, *KINDS["valid"])[0] == 200  # still answering
    # With every forward pass on the demo's one model thread the soak grows it by about 5 MiB;
    # passes on the clients' own threads grew it by 30 to 67 MiB, a malloc arena per thread.
    grown = rss_mib(process.pid) - before
    assert grown <= 20, f"the server grew by {grown:.0f} MiB over the soak"
    assert process.poll() is None
    assert "Traceback" not in log.read_text() and "BrokenPipe" not in log.read_text()


def test_clients_that_leave_early_leave_no_traceback(demo):
    url, process, log = demo
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    for request in (head("-1"), head("2000") + VALID[:40], head(str(len(VALID))) + VALID):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)  # and close at once, before any answer
    assert raw_request(url, *KINDS["valid"])[0] == 200
    time.sleep(BODY_TIMEOUT + 1)  # the lying one has timed out by now
    assert process.poll() is None and "Traceback" not in log.read_text()


def test_keeps_answering_while_many_idle_connections_are_held_open(demo):
    url, _, log = demo
    host, port = url.split("//")[1].rstrip("/").split(":")
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(50)]
    try:
        began = time.monotonic()
        status, body = post(
            url, json.dumps({"context": CONTEXT, "question": "Who won?"}).encode(), timeout=10
        )
        assert status == 200 and "text" in body
        assert time.monotonic() - began < 5
    finally:
        for connection in idle:
            connection.close()
    assert "Traceback" not in log.read_text()


# --- text the model reads nothing of, or that cannot be encoded ------------------------------

NOTHING_TO_READ = "holds no words the model can read"
BROKEN = "holds a broken character (a lone surrogate"
ODD_TEXT = {  # name -> (passage, question, what the answer's message says)
    "zero-width passage": (
        "\u200b\u200c\u200d\u2060\ufeff",
        "Who won?",
        f"The passage {NOTHING_TO_READ}",
    ),
    "control-character passage": (
        "\x00\x01\x02\x7f\x1b",
        "Who won?",
        f"The passage {NOTHING_TO_READ}",
    ),
    "lone combining marks": ("\u0301\u0308\u0327", "Who won?", f"The passage {NOTHING_TO_READ}"),
    "lone surrogate passage": ("\ud800", "Who won?", f"The passage {BROKEN}"),
    "surrogate inside a passage": (CONTEXT + "\udfff", "Who won?", f"The passage {BROKEN}"),
    "zero-width question": (CONTEXT, "\u200b\u200b\u200b", f"The question {NOTHING_TO_READ}"),
    "surrogate in the question": (CONTEXT, "Who won\udbff?", f"The question {BROKEN}"),
}


@pytest.mark.parametrize("name", list(ODD_TEXT))
def test_text_the_model_cannot_read_gets_a_400_not_a_dropped_connection(demo, name):
    url, process, log = demo
    context, question, message = ODD_TEXT[name]
    # json.dumps writes a lone surrogate as its \ud800 escape, as a browser's JSON.stringify does.
    status, body, _ = raw_request(
        url, *body_request(json.dumps({"context": context, "question": question}).encode())
    )
    assert status == 400 and body["error"].startswith(message), (name, status, body)
    assert raw_request(url, *KINDS["valid"])[0] == 200  # still answering
    assert process.poll() is None and "Traceback" not in log.read_text()


@pytest.mark.parametrize(
    "fields", [{"question": 5}, {"question": ["Who?"]}, {"context": {"a": 1}}, {"question": None}]
)
def test_wrong_types_get_a_400(demo, fields):
    url, _, log = demo
    request = {"context": CONTEXT, "question": "Who won?", **fields}
    status, body, _ = raw_request(url, *body_request(json.dumps(request).encode()))
    assert status == 400 and body["error"] in (
        "Type a question.",
        "Paste a passage to answer from.",
    )
    assert "Traceback" not in log.read_text()
