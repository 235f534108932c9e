"""The demo's HTTP edge against slow and odd clients, served in this process with a stand-in for
the model (no weights loaded): bodies and headers sent a byte at a time, more clients than it
serves at once, malformed request lines, and a model that raises."""

import http.client
import json
import socket
import threading
import time

import pytest

import demo_qa
from test_demo_server import VALID, head, raw_request

pytestmark = pytest.mark.slow  # starts servers

BODY_S, HEAD_S, SLOTS = 1.0, 2.0, 4  # the deadlines and the connection limit, shortened here


class StandIn:
    """What the handler uses of demo_qa.Demo; `fail` makes the answer raise."""

    info = {"model": "stand-in", "examples": []}
    fail = None

    def tokens(self, text):
        return text.split()

    def answer(self, context, question):
        if self.fail:
            raise self.fail
        return {"text": context.split()[0], "start": 0}


@pytest.fixture
def served(monkeypatch):
    """(url, stand-in) of a demo server on a free port, with short deadlines."""
    monkeypatch.setattr(demo_qa, "BODY_TIMEOUT_SECONDS", BODY_S)
    monkeypatch.setattr(demo_qa, "IDLE_TIMEOUT_SECONDS", HEAD_S)
    stand_in = StandIn()
    server = demo_qa.serve(stand_in, "127.0.0.1", 0, max_connections=SLOTS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", stand_in
    server.shutdown()
    server.server_close()


def connect(url) -> socket.socket:
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def trickle(url, first: bytes, rest: bytes, every=0.1):
    """Send `first`, then `rest` a byte every `every` s until the server answers;
    (status, JSON body, seconds from the first byte to the answer)."""
    sock = connect(url)
    began = time.monotonic()
    sock.sendall(first)

    def drip():
        for byte in rest:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return  # answered and closed: the rest is not wanted
            time.sleep(every)

    threading.Thread(target=drip, daemon=True).start()
    with sock:
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read()), time.monotonic() - began


def test_a_body_sent_a_byte_at_a_time_gets_408_at_the_overall_deadline(served):
    """Every byte comes well within a read timeout; the body as a whole does not."""
    url, _ = served
    status, body, seconds = trickle(url, head(str(len(VALID))), VALID)
    assert status == 408 and body["error"].startswith(
        f"The body did not arrive within {BODY_S:g} s"
    )
    assert BODY_S <= seconds < BODY_S + 2


def test_headers_sent_a_byte_at_a_time_get_408_at_the_deadline(served, capsys):
    url, _ = served
    request = head(str(len(VALID)), "X-Padding: " + "x" * 200) + VALID
    status, body, seconds = trickle(url, request[:20], request[20:])
    assert status == 408 and body == {
        "error": f"The request's headers did not arrive within {HEAD_S:g} s."
    }
    assert HEAD_S <= seconds < HEAD_S + 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_slow_client_does_not_hold_up_the_others(served):
    url, _ = served
    slow = threading.Thread(target=trickle, args=(url, head(str(len(VALID))), VALID))
    slow.start()
    began = time.monotonic()
    assert raw_request(url, head(str(len(VALID))), VALID)[:2] == (200, {"text": "The", "start": 0})
    assert time.monotonic() - began < BODY_S  # answered while the slow body is still coming
    slow.join()


def test_clients_over_the_limit_get_503_at_once_and_slots_come_back(served):
    url, _ = served
    held = [connect(url) for _ in range(SLOTS)]
    for sock in held:
        sock.sendall(b"POST /api/answer HTTP/1.1\r\n")  # and no more: each holds a thread
    try:
        time.sleep(0.2)  # the server has accepted them all
        status, body, seconds = raw_request(url, head(str(len(VALID))), VALID)
        assert status == 503 and body == {
            "error": "The demo is busy with other clients; try again."
        }
        assert seconds < 1
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + HEAD_S + 2  # closed by their clients, or at the deadline
    while (status := raw_request(url, head(str(len(VALID))), VALID)[0]) == 503:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status == 200


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"POST /api/answer HTTP/9.9\r\n\r\n", 505),
        (b"BREW /api/answer HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
    ],
)
def test_requests_http_server_refuses_are_answered_in_json(served, request_bytes, status):
    url, _ = served
    answered, body, _ = raw_request(url, request_bytes)
    assert answered == status and body["error"]


def test_a_model_that_raises_gets_a_json_500_and_one_log_line(served, capsys):
    url, stand_in = served
    stand_in.fail = AttributeError("'pyarrow.lib.NullArray' object has no attribute 'flatten'")
    status, body, _ = raw_request(url, head(str(len(VALID))), VALID)
    assert status == 500 and "could not answer" in body["error"]
    log = capsys.readouterr().err
    assert "could not answer: AttributeError: 'pyarrow.lib.NullArray'" in log
    assert "Traceback" not in log
    stand_in.fail = None
    assert raw_request(url, head(str(len(VALID))), VALID)[0] == 200
