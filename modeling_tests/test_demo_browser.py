"""`ramplus demo` in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, through Selenium)
opens the page of a demo started on 127.0.0.1 with the golden tiny model, uploads a photo, reads the tags back from
the page and compares them with the pipeline's tags for that photo; it draws a heatmap and saves a screenshot
(`docs/images/demo.png` when RAMPLUS_DEMO_SCREENSHOT names it, else the test's tmp folder).

Slow-marked (a demo start costs about a minute on 2 shared cores): `.ci/run` runs it explicitly. Skips when Gradio,
Selenium, Chromium or chromedriver is missing."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REFERENCE_IMAGES


pytestmark = pytest.mark.slow
pytest.importorskip("gradio")
pytest.importorskip("selenium")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)", allow_module_level=True)

PHOTO = REFERENCE_IMAGES[1]  # demo2.jpg
OWN_TAGS = ["abacus", "belly", "academy", "accessory"]  # of the tiny vocabulary (the tiny model has no text tower)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(converted_tiny, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "transformers_ramplus.cli", "demo", "--model", str(converted_tiny),
               "--port", str(port), "--device", "cpu"]
    with open(log, "wb") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 240
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            pytest.fail(f"the demo did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield url
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1100"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def tagger(converted_tiny):
    from transformers import pipeline

    import transformers_ramplus  # noqa: F401

    return pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")


def _page_tags(driver, timeout=120):
    """The rows of the page's tag table as `(english, chinese, score)`, once the table is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#ramplus-tags tr.ramplus-tag") or d.find_elements(By.ID, "ramplus-no-tags")
    )
    rows = driver.find_elements(By.CSS_SELECTOR, "#ramplus-tags tr.ramplus-tag")
    return [
        (row.find_element(By.CLASS_NAME, "en").text, row.find_element(By.CLASS_NAME, "zh").text,
         float(row.find_element(By.CLASS_NAME, "score").text))
        for row in rows
    ]


def _upload(driver, path):
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#ramplus-image input[type=file]").send_keys(str(path))


def test_upload_shows_the_pipelines_tags_and_a_heatmap(demo_url, browser, tagger, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(demo_url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#ramplus-image input[type=file]"))
    _upload(browser, PHOTO)  # tags on upload, with the model's per-tag thresholds
    got = _page_tags(browser)
    want = tagger(str(PHOTO))
    assert want, "the tiny model gives this photo no tags: the comparison would be empty"
    assert [label for label, _, _ in got] == [t["label"] for t in want]
    assert all(abs(score - t["score"]) < 1e-4 for (_, _, score), t in zip(got, want))
    chinese = dict(zip(tagger.get_tag_set(None).names, tagger.get_tag_set(None).labels("zh")))
    assert [zh for _, zh, _ in got] == [chinese[t["label"]] for t in want]

    # the heatmap of the first tag (chosen in the dropdown when the tags came)
    browser.find_element(By.ID, "ramplus-draw").click()
    WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#ramplus-heatmap img"))
    time.sleep(1)
    target = Path(os.environ.get("RAMPLUS_DEMO_SCREENSHOT") or tmp_path / "demo.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(target))
    assert target.stat().st_size > 10_000


def test_own_tags_and_threshold(demo_url, browser, tagger):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(demo_url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#ramplus-own-tags textarea"))
    box = browser.find_element(By.CSS_SELECTOR, "#ramplus-own-tags textarea")
    box.send_keys("\n".join(OWN_TAGS))
    browser.find_element(By.CSS_SELECTOR, "#ramplus-model-thresholds input[type=checkbox]").click()  # use the slider
    number = browser.find_element(By.CSS_SELECTOR, "#ramplus-threshold input[type=number]")
    number.clear()
    number.send_keys("0.3\t")
    _upload(browser, PHOTO)
    got = _page_tags(browser)
    want = tagger(str(PHOTO), candidate_labels=OWN_TAGS, threshold=0.3)
    assert [label for label, _, _ in got] == [t["label"] for t in want]
    assert all(abs(score - t["score"]) < 1e-4 for (_, _, score), t in zip(got, want))


def test_several_images(demo_url, browser, tagger):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(demo_url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#ramplus-several"))
    browser.find_element(By.CSS_SELECTOR, "#ramplus-several button").click()  # open the accordion
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#ramplus-files input[type=file]"))
    browser.find_element(By.CSS_SELECTOR, "#ramplus-files input[type=file]").send_keys("\n".join(str(p) for p in REFERENCE_IMAGES))
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ramplus-files .file-preview tr, #ramplus-files tr")) >= 2)
    browser.find_element(By.ID, "ramplus-run-many").click()
    WebDriverWait(browser, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ramplus-many h4.ramplus-file")) == 2)
    names = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#ramplus-many h4.ramplus-file")]
    assert names == [p.name for p in REFERENCE_IMAGES]
    want = [tagger(str(path)) for path in REFERENCE_IMAGES]
    assert all(want), "a photo without tags would leave its table out"
    tables = browser.find_elements(By.CSS_SELECTOR, "#ramplus-many table.ramplus-tags")
    assert len(tables) == len(want)
    for table, tags in zip(tables, want):
        assert [cell.text for cell in table.find_elements(By.CSS_SELECTOR, "td.en")] == [t["label"] for t in tags]
