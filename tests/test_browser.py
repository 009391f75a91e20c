"""End to end in a real browser: `streamlit run` on a free local port, driven by Playwright
with Debian's Chromium (headless). Visits every page, uploads a photograph on the Classify
page, reads the predictions off the page and saves a screenshot of each page.

Needs /usr/bin/chromium (apt-get install chromium chromium-driver; .ci/run does this). It is
skipped without it on a developer machine, and fails without it under CI.
"""

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from streamlit_server import CHROMIUM, CHROMIUM_FLAGS, streamlit_server

PAGES = [  # (url path, navigation label, page heading)
    ("", "Leaderboard", "Leaderboard"),
    ("run", "Run", "Run"),
    ("curves", "Training curves", "Training curves"),
    ("training_now", "Training now", "Training now"),
    ("per_class", "Per-class & confusion", "Per-class metrics and confusion"),
    ("mistakes", "Mistakes (cat vs dog)", "Mistakes"),
    ("classify", "Classify a photo", "Classify a photo"),
    ("compare", "Compare two models", "Compare two models"),
    ("agreement", "Agreement", "Agreement across models"),
    ("map", "Map of the test set", "Map of the test set"),
    ("data", "The data", "The data"),
    ("ladder", "Ladders", "Ladders: one change at a time"),
    ("tuning", "Tuning", "Hyper-parameter studies"),
    ("robustness", "Robustness", "Robustness"),
]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} missing: .ci/run must install Debian's chromium", pytrace=False)
    pytest.skip(
        f"{CHROMIUM} not installed (apt-get install chromium chromium-driver)", allow_module_level=True
    )
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def e2e_root(dash_root, ladder_root, tmp_path_factory) -> Path:
    # CIFAR_E2E_ARTIFACTS=artifacts takes the screenshots on real runs instead of the tiny ones.
    root = os.environ.get("CIFAR_E2E_ARTIFACTS")
    if not root:  # the zoo's tiny runs and two rungs of a ladder
        root = tmp_path_factory.mktemp("e2e-artifacts")
        for source in (dash_root, ladder_root):
            shutil.copytree(source / "runs", root / "runs", dirs_exist_ok=True)
    return Path(root).resolve()


@pytest.fixture(scope="module")
def server(e2e_root, dash_root):
    with streamlit_server(e2e_root, dash_root.parent) as (url, _proc):
        yield url


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        # The server may be loading the models in the background while the other worker
        # runs its tests: 2 vCPUs shared three ways. Navigation gets the same 2 min as waits.
        context.set_default_navigation_timeout(240_000)  # 2 vCPUs shared with the other test worker
        yield context.new_page()
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("CIFAR_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


def _wait_idle(page, settle: bool = True) -> None:
    """Until Streamlit has finished running the script for this page."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=120_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=60_000)
    if settle:
        page.wait_for_timeout(1500)  # plotly draws after the script has finished


def test_every_page_opens_in_a_browser(server, page, shots):
    start = time.perf_counter()
    page.goto(server)
    page.get_by_role("heading", name="Leaderboard").first.wait_for(timeout=60_000)
    _wait_idle(page, settle=False)
    timings = {"open (first visit, cold caches)": time.perf_counter() - start}
    for visit, (path, label, heading) in enumerate(2 * (PAGES[1:] + PAGES[:1])):
        warm = "warm" if visit >= len(PAGES) else "first"
        start = time.perf_counter()
        page.get_by_role("link", name=label).first.click()
        page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
        _wait_idle(page, settle=False)
        timings[f"switch to {label} ({warm})"] = time.perf_counter() - start
        assert page.locator('[data-testid="stException"]').count() == 0, label
        assert urlparse(page.url).path.rstrip("/").endswith(path) or not path
        page.wait_for_timeout(1500)  # let plotly draw before the screenshot
        page.screenshot(path=str(shots / f"{path or 'leaderboard'}.png"), full_page=True)
    # Charts drawn only when their tab is opened: the Leaderboard's two (the loop ended
    # there), then Compare's reliability diagram.
    tabs = [
        ("Leaderboard", "Accuracy & F1 by model", "leaderboard-bars", 2),
        ("Leaderboard", "Accuracy vs cost", "leaderboard-cost", 1),
        ("Compare two models", "Reliability diagram", "compare-reliability", 1),
    ]
    for label, tab, shot, charts in tabs:
        if label != "Leaderboard":
            page.get_by_role("link", name=label).first.click()
            page.get_by_role("heading", name=label).first.wait_for(timeout=60_000)
            _wait_idle(page, settle=False)
        start = time.perf_counter()
        page.get_by_role("tab", name=tab).click()
        page.wait_for_function(
            f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}",
            timeout=60_000,
        )
        _wait_idle(page, settle=False)
        timings[f"{label} tab {tab}"] = time.perf_counter() - start
        assert page.locator('[data-testid="stException"]').count() == 0, tab
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / f"{shot}.png"), full_page=True)
    # What a second user sees: a new browser session on the running server.
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    other = context.new_page()
    start = time.perf_counter()
    other.goto(server)
    other.get_by_role("heading", name="Leaderboard").first.wait_for(timeout=60_000)
    _wait_idle(other, settle=False)
    timings["open (new session, server running)"] = time.perf_counter() - start
    context.close()
    # Figures, not assertions: this machine is shared and noisy.
    print("\n" + "\n".join(f"{name}: {seconds:.2f} s" for name, seconds in timings.items()))


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
    assert re.match(r"\d+/\d+ models say \w+", text), text
    assert page.get_by_text("chelsea.jpg").count() >= 1
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shots / "classify-upload.png"), full_page=True)
    # "Why?": every model's heatmap over the 32x32 view, drawn when asked for.
    page.get_by_text("Why? Show each model's heatmap").first.click()
    page.get_by_text("where it sees").first.wait_for(timeout=120_000)
    _wait_idle(page)
    captions = page.get_by_text("where it sees").count()
    print(f"heatmap captions: {captions}")
    assert captions >= 3 and page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shots / "classify-why.png"), full_page=True)


def test_a_box_on_the_map_shows_the_images_inside_and_the_data_page_ranks_labels(server, page, shots):
    page.goto(f"{server}/map")
    page.get_by_role("heading", name="Map of the test set").first.wait_for(timeout=60_000)
    _wait_idle(page)
    plot = page.locator(".js-plotly-plot .nsewdrag").first
    box = plot.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.9, steps=12)
    page.mouse.up()
    heading = page.get_by_text(re.compile(r"^\d+ selected: ")).first
    heading.wait_for(timeout=60_000)
    _wait_idle(page)
    print(f"\nMap selection: {heading.inner_text()}")
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shots / "map-selection.png"), full_page=True)
    page.goto(f"{server}/data")
    page.get_by_role("heading", name="The data").first.wait_for(timeout=60_000)
    _wait_idle(page)
    page.get_by_text("Possible label errors").first.click()
    page.get_by_text("Confident learning (cleanlab)").first.wait_for(timeout=240_000)
    _wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shots / "data-label-errors.png"), full_page=True)


def test_the_ladder_page_draws_its_steps_and_a_click_on_a_step_opens_that_rung(server, page, shots):
    page.goto(f"{server}/ladder")
    page.get_by_role("heading", name="Ladders: one change at a time").first.wait_for(timeout=60_000)
    _wait_idle(page)
    assert page.get_by_role("heading", name=re.compile("^Rung 1:")).count() == 1
    steps = page.locator(".js-plotly-plot").first
    # Traces: train, validation, test (this run), then the write-up's test figures (seed 004
    # reports test accuracy only). Rungs 1 and 2 are trained: click the test point of rung 2.
    point = steps.locator(".scatterlayer .trace").nth(2).locator("path.point").nth(1)
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.get_by_role("heading", name=re.compile("^Rung 2:")).first.wait_for(timeout=60_000)
    _wait_idle(page)
    assert page.get_by_text("Confusion matrix change from rung 1").count() >= 1
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shots / "ladder-rung.png"), full_page=True)


def test_a_training_in_progress_is_on_the_training_now_page_and_moves(
    server, e2e_root, page, shots, image_folder
):
    from trainers import start, train_args, training, wait_for

    if os.environ.get("CIFAR_E2E_ARTIFACTS"):
        pytest.skip("trains only into the tests' own artifacts")
    log = e2e_root.parent / "e2e-trainer.log"
    # An epoch of the tiny folder takes 0.1-0.2 s: 200 epochs ended before a page slowed by a
    # busy worker drew its bar (CI, stop 40), and the run name matched its "finished" line.
    # Enough epochs that it still trains when the test kills it.
    proc = start(train_args(e2e_root, image_folder, epochs=100_000), log)
    try:
        live = wait_for(lambda: training(e2e_root, 1), 180, "the first epoch", proc, log)
        page.goto(f"{server}/training_now")
        page.get_by_role("heading", name="Training now").first.wait_for(timeout=60_000)
        bar = page.locator('[data-testid="stProgress"]').first
        try:
            bar.wait_for(timeout=120_000)  # slower beside a busy worker
        except sync_api.Error as error:
            state = "running" if proc.poll() is None else f"exited {proc.returncode}"
            raise AssertionError(f"no progress bar; trainer {state}:\n{log.read_text()[-1500:]}") from error
        assert proc.poll() is None and page.get_by_text(live.run).count() >= 1
        first = bar.inner_text()
        assert "ETA" in first and "epoch" in first
        # The fragment re-reads every few seconds: the epoch moves without a reload.
        page.wait_for_function(
            """(before) => {
                const bar = document.querySelector('[data-testid="stProgress"]');
                return bar && bar.innerText.match(/epoch \\d+/)[0] !== before.match(/epoch \\d+/)[0];
            }""",
            arg=first,
            timeout=60_000,
        )
        # The fragment redraws below the bar after the bar moved: wait for the rest to arrive.
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        page.get_by_role("button", name="Stop…").first.wait_for(timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(shots / "training-now.png"), full_page=True)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(e2e_root / "work", ignore_errors=True)  # the other tests' root, as it was


def test_a_deep_link_opens_that_run_and_a_click_on_a_confusion_cell_shows_its_images(
    server, e2e_root, page, shots
):
    from cifar_core import artifacts

    runs = [r for r in artifacts.load_runs(e2e_root)[0] if not artifacts.is_ladder_run(r)]
    run = sorted(runs, key=lambda r: r.metrics["test"]["accuracy"])[0]  # not the page's default
    page.goto(f"{server}/run?run={run.run_id}")
    page.get_by_role("heading", name=run.label, exact=True).first.wait_for(timeout=60_000)
    _wait_idle(page)
    assert page.get_by_text(run.run_id).count() >= 1
    names = run.class_names
    t, p = names.index("cat"), names.index("dog")
    chart = page.locator(".js-plotly-plot").first  # the confusion matrix
    chart.scroll_into_view_if_needed()  # a click lands only inside the viewport
    page.wait_for_timeout(500)
    cell = chart.locator(".scatterlayer .trace path.point").nth(t * len(names) + p)
    box = cell.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.get_by_text(re.compile(r"cat predicted as dog")).first.wait_for(timeout=120_000)
    _wait_idle(page)
    count = int(run.confusion[t, p])
    assert page.get_by_text(f"{count} test images").count() >= 1
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shots / "run-page.png"), full_page=True)
