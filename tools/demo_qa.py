"""A small web page to ask a trained folder questions: the answer is highlighted in the passage.

    python tools/demo_qa.py runs/squad20pct [--port 7860]      # or: make demo
    then open http://127.0.0.1:7860

Paste a passage or pick one of the dev questions the run showed as samples, ask, and see the
answer marked in the passage with its probability and the next best answers; a SQuAD 2.0 model
says when the passage holds no answer. Served by the standard library (http.server) with one
HTML file and no JavaScript framework: nothing to download, nothing fetched from other hosts,
so it starts in the time the model takes to load and runs the same offline and in CI.
"""

import argparse
import concurrent.futures
import io
import json
import os
import re
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
from datasets import Dataset

from qa.answers.settings import answering_settings
from qa.data.load import SquadDataError, load_squad_file, resolve_data_path
from qa.data.windows import QuestionTooLong
from qa.serve.export import add_backend_argument
from qa.serve.predict import QuestionAnswerer, add_bf16_argument, use_bf16

PAGE = Path(__file__).resolve().parent / "demo_qa.html"
MAX_CONTEXT_CHARS = 20_000  # a few pages of text: a handful of windows, answered in seconds
# A request body: the longest passage even with every character escaped (\uXXXX), and a question.
MAX_BODY_BYTES = 256 * 1024
BODY_TIMEOUT_SECONDS = 3.0  # a body announced but not whole in this time is refused (408)
# A request's line and headers must be whole this long after the connection is ready for them;
# one that sends nothing in this time is closed.
IDLE_TIMEOUT_SECONDS = 10.0
# Connections served at once (a thread each); more are answered 503 at once. With the deadlines
# above, slow or silent clients hold a slot for seconds, not for as long as they like.
MAX_CONNECTIONS = 100
SHOWN_ALTERNATIVES = 4
FALLBACK_EXAMPLE = {  # used when the run's dev set is not at hand
    "title": "Tea",
    "question": "Where was tea first drunk as a medicinal drink?",
    "context": (
        "Tea is an aromatic beverage prepared by pouring hot or boiling water over cured or "
        "fresh leaves of Camellia sinensis, an evergreen shrub native to East Asia. It was "
        "first drunk as a medicinal drink in China during the Shang dynasty, and it reached "
        "Europe through Portuguese priests and merchants in the 16th century."
    ),
}


def run_settings(model_dir: str) -> dict:
    """The data arguments the folder was trained or evaluated with (run_qa's run_config.json)."""
    path = os.path.join(model_dir, "run_config.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("data_arguments", {})


def sample_examples(model_dir: str, settings: dict) -> list[dict]:
    """The dev questions the run showed as samples, with their whole passages."""
    samples_path = os.path.join(model_dir, "samples.json")
    dev_file = settings.get("validation_file")
    if not (os.path.isfile(samples_path) and dev_file):
        return [FALLBACK_EXAMPLE]
    with open(samples_path, encoding="utf-8") as f:
        wanted = [s["id"] for s in json.load(f)]
    try:
        dev = load_squad_file(resolve_data_path(dev_file), allow_unanswerable=True)
    except (SquadDataError, FileNotFoundError, OSError):
        return [FALLBACK_EXAMPLE]
    wanted_ids = set(wanted)
    rows = {row["id"]: row for row in dev.filter(lambda i: i in wanted_ids, input_columns="id")}
    examples = [
        {"title": rows[i]["title"], "question": rows[i]["question"], "context": rows[i]["context"]}
        for i in wanted
        if i in rows
    ]
    return examples or [FALLBACK_EXAMPLE]


class Demo:
    def __init__(self, model_dir, version_2=None, null_threshold=None, bf16=False, backend="torch"):
        """version_2 and null_threshold default to what the folder was trained with."""
        settings = answering_settings(
            model_dir, version_2_with_negative=version_2, null_score_diff_threshold=null_threshold
        )
        self.info = {
            "model": os.path.basename(os.path.normpath(model_dir)),
            "version_2": settings["version_2_with_negative"],
            "null_score_diff_threshold": settings["null_score_diff_threshold"],
            "examples": sample_examples(model_dir, run_settings(model_dir)),
        }
        self.answerer = QuestionAnswerer(model_dir, bf16=bf16, backend=backend, **settings)
        # Every forward pass runs on this one thread, one at a time: torch uses all cores anyway,
        # and tensors allocated on one thread stay in one malloc arena. Run on each client's
        # thread, concurrent clients grew the server by tens of MiB, one arena per thread.
        self.model_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="model")

    def tokens(self, text: str) -> list[str]:
        """What the model reads of text: nothing for zero-width, control or lone accent marks."""
        return self.answerer.tokenizer.tokenize(text)

    def predict(self, context: str, question: str):
        examples = Dataset.from_dict({"id": ["q"], "question": [question], "context": [context]})
        return self.answerer(examples)["q"]

    def answer(self, context: str, question: str) -> dict:
        began = time.perf_counter()
        prediction = self.model_thread.submit(self.predict, context, question).result()
        no_answer = prediction.start < 0
        alternatives = [
            c for c in prediction.nbest if (c.start, c.end) != (prediction.start, prediction.end)
        ]
        return {
            "text": prediction.text,
            "start": prediction.start,
            "end": prediction.end,
            "probability": prediction.probability,
            "no_answer": no_answer,
            "no_answer_probability": prediction.no_answer_probability,
            "alternatives": [
                {"text": c.text, "start": c.start, "end": c.end, "probability": c.probability}
                for c in alternatives[:SHOWN_ALTERNATIVES]
            ],
            "seconds": round(time.perf_counter() - began, 3),
        }


def check_request(body: dict, tokens=None) -> tuple[str, str]:
    """(passage, question), or ValueError with the page's message; `tokens` (Demo.tokens), when
    given, refuses text the model would read nothing of."""
    context, question = body.get("context"), body.get("question")
    if not isinstance(context, str) or not context.strip():
        raise ValueError("Paste a passage to answer from.")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("Type a question.")
    if len(context) > MAX_CONTEXT_CHARS:
        raise ValueError(
            f"The passage is {len(context):,} characters; the demo takes up to "
            f"{MAX_CONTEXT_CHARS:,}. Use tools/predict_qa.py --file for long texts."
        )
    for text, what in ((context, "passage"), (question, "question")):
        check_text(text, what, tokens)
    return context, question.strip()


def check_text(text: str, what: str, tokens=None) -> None:
    # JSON can carry a lone surrogate (\ud800) that no UTF-8 tokenizer can encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"The {what} holds a broken character (a lone surrogate, "
            f"at {err.start}); send valid Unicode text."
        ) from None
    if tokens is not None and not tokens(text):
        raise ValueError(
            f"The {what} holds no words the model can read (only invisible, "
            "control or accent characters); type some text."
        )


class BadRequest(Exception):
    """A request refused with `status` and a message for the page."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class DeadlineReader(io.RawIOBase):
    """A connection's reads, each waiting only for what is left until the deadline: a client
    that sends a byte a second cannot stretch its headers or body past it, as it could stretch
    a timeout per read. TimeoutError once the deadline has passed."""

    def __init__(self, connection):
        self.connection = connection
        self.start(0)

    def readable(self):
        return True

    def start(self, seconds: float) -> None:
        """What is read next must have come within `seconds` from now."""
        self.deadline, self.received, self.expired = time.monotonic() + seconds, 0, False

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError("the deadline passed")
            self.connection.settimeout(left)
            count = self.connection.recv_into(buffer)
        except TimeoutError:
            self.expired = True
            raise
        self.received += count
        return count


def make_handler(demo: Demo, page: bytes):
    class Handler(BaseHTTPRequestHandler):
        # The socket's timeout while answering: a client that does not read does not hold a thread.
        timeout = IDLE_TIMEOUT_SECONDS

        def setup(self):
            super().setup()
            self.rfile.close()  # the socket's own reader: its reference would keep it open
            self.reader = DeadlineReader(self.connection)
            self.rfile = io.BufferedReader(self.reader)

        def handle_one_request(self):
            # Nothing of the last request: a timeout before this one's line is read answers HTTP/1.1.
            self.command, self.path, self.request_version = None, "", "HTTP/1.1"
            self.answered = False
            self.reader.start(IDLE_TIMEOUT_SECONDS)  # the request line and headers, whole
            super().handle_one_request()  # a TimeoutError there: one log line, connection closed
            if self.reader.expired and self.reader.received and not self.answered:
                self.send_json(
                    HTTPStatus.REQUEST_TIMEOUT,
                    {
                        "error": (
                            f"The request's headers did not arrive within {IDLE_TIMEOUT_SECONDS:g} s."
                        )
                    },
                )

        def send_error(self, code, message=None, explain=None):
            """http.server's own refusals (a malformed request line or headers, an unknown
            method) as JSON, like every other answer."""
            self.close_connection = True
            # A line too broken to name its version reads as HTTP/0.9, answered without a status
            # line; every client of this page speaks HTTP/1.
            if self.request_version == "HTTP/0.9":
                self.request_version = "HTTP/1.1"
            self.send_json(code, {"error": message or HTTPStatus(code).phrase})

        def send(self, status, payload: bytes, content_type: str):
            self.answered = True
            try:
                self.connection.settimeout(IDLE_TIMEOUT_SECONDS)  # not what a read deadline left
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Cache-Control", "no-store")
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                self.close_connection = True  # the client left: nothing to tell it
                self.log_message("client gone before the answer (%s)", status)

        def read_body(self) -> bytes:
            """The JSON body, refused before it is read when its announced length is missing,
            malformed or too large, and when it does not arrive in time."""
            if self.headers.get("Transfer-Encoding"):
                raise BadRequest(
                    HTTPStatus.LENGTH_REQUIRED, "Send the body with a Content-Length, not chunked."
                )
            declared = (self.headers.get("Content-Length") or "").strip()
            if not declared:
                raise BadRequest(
                    HTTPStatus.LENGTH_REQUIRED, "Send a JSON body with a Content-Length."
                )
            if not re.fullmatch(r"[0-9]{1,15}", declared):
                raise BadRequest(
                    HTTPStatus.BAD_REQUEST, f"Content-Length {declared[:20]!r} is not a byte count."
                )
            length = int(declared)
            if length > MAX_BODY_BYTES:
                raise BadRequest(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"The request is {length:,} bytes; the demo takes up to {MAX_BODY_BYTES:,}.",
                )
            self.reader.start(BODY_TIMEOUT_SECONDS)  # the whole body, not each read
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                raise BadRequest(
                    HTTPStatus.REQUEST_TIMEOUT,
                    f"The body did not arrive within {BODY_TIMEOUT_SECONDS:g} s ({length:,} bytes announced).",
                ) from None
            if len(body) < length:
                raise BadRequest(
                    HTTPStatus.BAD_REQUEST, "The body is shorter than its Content-Length."
                )
            return body

        def send_json(self, status, data):
            self.send(status, json.dumps(data).encode(), "application/json")

        def do_GET(self):
            if self.path in ("/", "/index.html"):
                self.send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif self.path == "/api/info":
                self.send_json(HTTPStatus.OK, demo.info)
            else:
                self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

        def do_POST(self):
            if self.path != "/api/answer":
                self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {self.path}"})
                return
            try:
                status, payload = HTTPStatus.OK, self.answer(*self.question_of_request())
            except BadRequest as err:
                status, payload = err.status, {"error": str(err)}
            except Exception as err:  # whatever the model code raises: an answer, not a drop
                self.log_message("could not answer: %s: %s", type(err).__name__, str(err)[:200])
                status, payload = (
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    {
                        "error": (
                            "The model could not answer this passage and question; try other text."
                        )
                    },
                )
            self.send_json(status, payload)

        def question_of_request(self) -> tuple[str, str]:
            """(passage, question) from the JSON body, or BadRequest with the page's message."""
            try:
                raw = self.read_body()
            except BadRequest:
                self.close_connection = True  # what is left of the body is not read
                raise
            try:
                body = json.loads(raw.decode("utf-8") or "{}")
                if not isinstance(body, dict):
                    raise ValueError("Send a JSON object with context and question.")
                return check_request(body, demo.tokens)
            except UnicodeDecodeError:  # before ValueError: it is one
                raise BadRequest(HTTPStatus.BAD_REQUEST, "Send the JSON as UTF-8 text.") from None
            except ValueError as err:  # json.JSONDecodeError is one
                raise BadRequest(HTTPStatus.BAD_REQUEST, str(err)) from None
            except RecursionError:  # [[[[... nested deeper than Python's stack
                raise BadRequest(HTTPStatus.BAD_REQUEST, "Send a flat JSON object.") from None

        def answer(self, context: str, question: str) -> dict:
            try:
                return demo.answer(context, question)
            except QuestionTooLong as err:
                raise BadRequest(
                    HTTPStatus.BAD_REQUEST,
                    (
                        f"The question has {err.found[0][1]:,} tokens; the demo takes up to "
                        f"{err.limit} (a sentence or two). Put long text in the passage."
                    ),
                ) from None

        def log_request(self, code="-", size="-"):  # one short line per request
            self.log_message("%s", getattr(code, "value", code))

        def log_message(self, format, *args):
            command, path = getattr(self, "command", None), getattr(self, "path", "")
            sys.stderr.write(f"demo: {command or '-'} {path[:80]} {format % args}\n")

    return Handler


def busy_reply() -> bytes:
    """The whole 503 answer, sent as it is to a connection over the limit."""
    body = json.dumps({"error": "The demo is busy with other clients; try again."}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 10\r\n\r\n"
    )
    return head.encode() + body


class DemoServer(ThreadingHTTPServer):
    """A thread per connection, up to `max_connections` at once; one log line, never a
    traceback, for whatever a connection's thread did not handle."""

    daemon_threads = True
    BUSY = busy_reply()

    def __init__(self, address, handler, max_connections: int = MAX_CONNECTIONS):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.refuse(request)
            return
        try:
            super().process_request(request, client_address)  # starts the thread
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def refuse(self, request):
        """503 without a thread, never waiting on the client: this runs on the accepting thread."""
        try:
            request.setblocking(False)
            request.send(self.BUSY)
        except OSError:
            pass  # gone, or its window full: it is closed all the same
        self.shutdown_request(request)

    def handle_error(self, request, client_address):
        kind, error = sys.exc_info()[:2]
        sys.stderr.write(
            f"demo: connection from {client_address[0]} ended: {kind.__name__}: {error}\n"
        )


def serve(demo: Demo, host: str, port: int, max_connections: int = MAX_CONNECTIONS) -> DemoServer:
    return DemoServer((host, port), make_handler(demo, PAGE.read_bytes()), max_connections)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="runs/squad20pct", help="a trained folder")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to let others reach it")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--version_2_with_negative",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: as the folder was trained",
    )
    parser.add_argument(
        "--null_score_diff_threshold",
        type=float,
        default=None,
        help="2.0: answer 'none' when null score - best span > this",
    )
    add_bf16_argument(parser)
    add_backend_argument(parser)
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        raise SystemExit(
            f"error: {args.model} is not a trained folder (no config.json). Train one with "
            "`make train`, or pass a folder: make demo MODEL=path/to/run"
        )
    datasets.disable_progress_bars()
    demo = Demo(
        args.model,
        args.version_2_with_negative,
        args.null_score_diff_threshold,
        use_bf16(args.bf16),
        args.backend,
    )
    try:
        server = serve(demo, args.host, args.port)
    except OSError as err:
        raise SystemExit(
            f"error: cannot listen on {args.host}:{args.port} ({err.strerror}): "
            "pick another with --port (make demo PORT=...)"
        ) from None
    host, port = server.server_address[:2]
    print(f"Demo of {args.model} on http://{host}:{port}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
