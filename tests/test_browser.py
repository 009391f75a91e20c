"""End to end in a real browser: `streamlit run` on a free local port, driven by Playwright
with Debian's Chromium (headless). Visits every page, uploads a photograph on the Classify
page, reads the predictions off the page and saves a screenshot of each page.

Needs /usr/bin/chromium (apt-get install chromium chromium-driver; .ci/run does this). It is
skipped without it on a developer machine, and fails without it under CI.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = {
    "": "Leaderboard",
    "curves": "Training curves",
    "per_class": "Per-class metrics and confusion",
    "mistakes": "Mistakes",
    "classify": "Classify a photo",
    "compare": "Compare two models",
    "agreement": "Agreement across models",
}

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} missing: .ci/run must install Debian's chromium", pytrace=False)
    pytest.skip(
        f"{CHROMIUM} not installed (apt-get install chromium chromium-driver)", allow_module_level=True
    )
sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(dash_root):
    port = _free_port()
    env = {**os.environ, "CIFAR_ARTIFACTS": str(dash_root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "dashboard/app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
    ]
    log = open(dash_root.parent / f"streamlit-{port}.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start: {Path(log.name).read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("CIFAR_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


def _wait_idle(page) -> None:
    """Until Streamlit has finished running the script for this page."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=120_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=60_000)
    page.wait_for_timeout(1500)  # plotly draws after the script has finished


@pytest.mark.parametrize("path, title", list(PAGES.items()))
def test_every_page_opens_in_a_browser(server, page, shots, path, title):
    page.goto(f"{server}/{path}")
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    _wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shots / f"{path or 'leaderboard'}.png"), full_page=True)


def test_uploading_a_photograph_shows_predictions(server, page, shots, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(skimage_data.chelsea()).save(photo, quality=90)
    page.goto(f"{server}/classify")
    page.get_by_role("heading", name="Classify a photo").first.wait_for(timeout=60_000)
    page.locator('input[type="file"]').set_input_files(str(photo))
    verdict = page.get_by_text("models say").first
    verdict.wait_for(timeout=120_000)
    _wait_idle(page)
    text = verdict.inner_text()
    print(f"\nClassify page on chelsea.jpg: {text}")
    assert text.startswith("3/3 models say") or "/3 models say" in text
    assert page.get_by_text("chelsea.jpg").count() >= 1
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shots / "classify-upload.png"), full_page=True)
