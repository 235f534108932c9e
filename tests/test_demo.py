"""The demo page, end to end in headless Chromium: ask, then read the highlighted answer."""

import json
import os
import urllib.error
import urllib.request

import pytest
from datasets import Dataset

from helpers.browser import ask, have_browser, start_browser, start_demo
from qa.serve.predict import answer_questions

pytestmark = pytest.mark.slow  # a trained smoke run, a browser

# CI installs Chromium (.ci/run); elsewhere the browser tests skip when it is missing.
needs_browser = pytest.mark.skipif(
    not have_browser() and not os.environ.get("CI"),
    reason="no Debian chromium + chromium-driver here (CI installs them)",
)
QUESTION = "Which NFL team represented the AFC at Super Bowl 50?"


@pytest.fixture(scope="module")
def demo(smoke_run):
    output, _, _ = smoke_run
    process, url = start_demo(output)
    yield output, url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_browser(str(tmp_path_factory.mktemp("chromium-profile")))
    yield driver
    driver.quit()


def post(url, body: bytes):
    request = urllib.request.Request(
        url + "api/answer", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@needs_browser
def test_page_highlights_the_models_answer_in_the_passage(demo, browser, tmp_path):
    output, url = demo
    with urllib.request.urlopen(url + "api/info", timeout=30) as response:
        first = json.loads(response.read())["examples"][0]  # a sample passage of the run
    shown = ask(browser, url, QUESTION, example=0)
    browser.save_screenshot(str(tmp_path / "demo.png"))

    expected = answer_questions(
        output,
        Dataset.from_dict({"id": ["q"], "question": [QUESTION], "context": [first["context"]]}),
        max_seq_length=256,
        doc_stride=96,
    )["q"]
    assert shown["outcome"] == "result", shown
    assert shown["highlighted"] == expected.text == first["context"][expected.start : expected.end]
    assert shown["answer_text"] == expected.text
    assert shown["probability"] == f"(probability {100 * expected.probability:.1f}%)"
    assert 1 <= len(shown["alternatives"]) <= 4
    assert shown["passage"].replace("\n", "") == first["context"].replace("\n", "")
    assert (tmp_path / "demo.png").stat().st_size > 10_000


@needs_browser
def test_typed_passage_and_an_empty_question_gets_a_message(demo, browser):
    _, url = demo
    shown = ask(browser, url, "", context="Paris is the capital of France.")
    assert shown["outcome"] == "error" and shown["error"] == "Type a question."


@needs_browser
def test_version_2_mode_can_answer_no_answer(smoke_run, browser):
    output, _, _ = smoke_run
    # A null score difference threshold far below any score: the null answer always wins.
    process, url = start_demo(
        output, "--version_2_with_negative", "--null_score_diff_threshold", "-1000"
    )
    try:
        shown = ask(browser, url, "Who won?", context="The Denver Broncos won the game 24-10.")
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert shown["no_answer"] == "No answer in this passage"
    assert shown["highlighted"] is None and shown["probability"].startswith("(probability ")


def test_api_refuses_bad_requests_with_a_message(demo):
    _, url = demo
    assert post(url, b"not json")[0] == 400
    status, body = post(url, json.dumps({"context": "", "question": "Who?"}).encode())
    assert status == 400 and body["error"] == "Paste a passage to answer from."
    status, body = post(url, json.dumps({"context": "x" * 20_001, "question": "Who?"}).encode())
    assert status == 400 and "up to 20,000" in body["error"]
    status, body = post(
        url, json.dumps({"context": "Paris is in France.", "question": "Where is Paris?"}).encode()
    )
    assert status == 200 and body["text"] and 0 < body["probability"] <= 1
