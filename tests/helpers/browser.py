"""Drive the demo page in headless Chromium (Debian's chromium + chromium-driver, via Selenium).

Used by tests/test_demo.py, and to take the README's screenshot of a running demo:

    python tests/helpers/browser.py http://127.0.0.1:7860 --example 0 \
        --question "Which NFL team represented the AFC at Super Bowl 50?" --screenshot demo.png
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

from helpers.recipe_runner import ROOT, environment

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# This machine has no route out: without these Chromium keeps trying Google's services.
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--window-size=1100,1000",
]  # fmt: skip


def have_browser() -> bool:
    return os.path.isfile(CHROMIUM) and os.path.isfile(CHROMEDRIVER)


def start_browser(user_data_dir: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={user_data_dir}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_for(condition, timeout=60.0, what="the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def ask(driver, url, question, example=None, context=None):
    """Open the page, fill the passage (a picked example or typed text), type the question,
    press Answer; returns what the page then shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(url)
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready"), what="/api/info")
    if example is not None:
        Select(driver.find_element(By.ID, "examples")).select_by_value(str(example))
    if context is not None:
        box = driver.find_element(By.ID, "context")
        box.clear()
        box.send_keys(context)
    field = driver.find_element(By.ID, "question")
    field.clear()
    field.send_keys(question)
    driver.find_element(By.ID, "ask").click()

    def shown():
        if driver.find_element(By.ID, "error").is_displayed():
            return "error"
        return driver.find_element(By.ID, "result").is_displayed() and "result"

    outcome = wait_for(shown, what="an answer or an error")

    def text_of(element_id):
        found = driver.find_elements(By.ID, element_id)
        return found[0].text if found and found[0].is_displayed() else None

    return {
        "outcome": outcome,
        "error": text_of("error"),
        "highlighted": text_of("answer"),
        "answer_text": text_of("answer-text"),
        "no_answer": text_of("no-answer"),
        "probability": text_of("probability"),
        "alternatives": [
            li.text for li in driver.find_elements(By.CSS_SELECTOR, "#alternatives li")
        ],
        "passage": text_of("passage"),
    }


def start_demo(model_dir, *extra, timeout=180.0):
    """tools/demo_qa.py on a free port; returns (process, url) once it listens."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tools/demo_qa.py"), str(model_dir), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(),
    )
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Demo of "):
            return process, line.split(" on ", 1)[1].split()[0].rstrip("/") + "/"
    process.kill()
    raise RuntimeError("demo did not start:\n" + "".join(lines[-20:]))


def main(argv=None):
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--question", required=True)
    parser.add_argument("--example", type=int, help="index of a sample passage on the page")
    parser.add_argument("--context", help="or a passage to type")
    parser.add_argument("--screenshot", help="PNG path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as profile:
        driver = start_browser(profile)
        try:
            shown = ask(driver, args.url, args.question, args.example, args.context)
            if args.screenshot:  # the whole page, top to bottom
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1100, height + 140)
                driver.execute_script("window.scrollTo(0, 0)")
                driver.save_screenshot(args.screenshot)
        finally:
            driver.quit()
    print(shown)


if __name__ == "__main__":
    main(sys.argv[1:])
