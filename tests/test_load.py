"""Load test: 10 concurrent headless browser sessions upload images on the Classify page.

Bounded: one `streamlit run` server on 127.0.0.1, 10 sessions, 60 s of uploads each, then
stop. Every prediction shown must be the one the same model gives for that image when
called directly. Reports the count, errors, p95 time from upload to predictions shown (in
the browsers, which share the CPU with the server), the server's own time per upload (the
script run, as the page states it) and the server's peak memory. Run with
``python -m pytest -m load -s -n 0``; CI runs it after the main suite. By default on the
tiny test runs; ``CIFAR_LOAD_ROOT=artifacts`` runs it on the committed models.
"""

import asyncio
import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_images
from PIL import Image
from streamlit_server import CHROMIUM, CHROMIUM_FLAGS, rss_mb, streamlit_server

pytestmark = [pytest.mark.load, pytest.mark.slow]
SESSIONS = int(os.environ.get("CIFAR_LOAD_SESSIONS", 10))
DURATION_S = float(os.environ.get("CIFAR_LOAD_SECONDS", 60))
PREDICTION = re.compile(r"([\w.]+): (\w+) (\d+)%")
SERVER_TIME = re.compile(r"Server time for this answer: ([\d.]+) s")


def _expected(dash_root: Path, images: dict[str, bytes]) -> dict[str, dict[str, str]]:
    """Per image, per model: the class each stored zoo model (what the Classify page shows,
    not a ladder's rungs) predicts, computed directly."""
    from cifar_core import artifacts
    from cifar_core.data.images import decode_image
    from cifar_core.serving.inference import classify, load_model

    runs, _ = artifacts.load_runs(dash_root)
    expected = {name: {} for name in images}
    for run in (r for r in runs if not artifacts.is_ladder_run(r)):
        model = load_model(run.model_path)
        for name, data in images.items():
            pixels = decode_image(data, name=name)
            expected[name][run.manifest["model"]] = classify(model, [pixels], run.class_names)[0]["top"][0][0]
    return expected


async def _answer(caption, models: int, timeout: float = 120) -> dict[str, str]:
    """The per-model predictions of the caption, once every model has answered."""
    deadline = time.monotonic() + timeout
    while True:
        shown = {m: c for m, c, _ in PREDICTION.findall(await caption.inner_text())}
        if len(shown) >= models or time.monotonic() > deadline:
            return shown
        await asyncio.sleep(0.05)


async def _warm(browser, url: str) -> None:
    """Open Classify once and wait until no model is loading: the sessions measure serving,
    the first load is the browser test's and the note's."""
    page = await browser.new_page()
    await page.goto(f"{url}/classify", timeout=120_000)
    await page.locator('input[type="file"]').wait_for(state="attached", timeout=120_000)
    quiet = 0
    while quiet < 4:
        await asyncio.sleep(0.5)
        quiet = 0 if await page.get_by_text("Loading models in the background").count() else quiet + 1
    await page.close()


async def _session(
    browser, url: str, images: dict[str, bytes], tmp: Path, index: int, deadline: float, models: int
):
    """One user: opens Classify once, then uploads, reads the predictions, removes the file."""
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    results, names = [], sorted(images)
    step, loaded = 0, False
    while time.monotonic() < deadline or not results:  # every session uploads at least once
        name = names[(index + step) % len(names)]
        path = tmp / f"s{index}-{step}-{name}"  # a new file name per upload: its row is new
        step += 1
        path.write_bytes(images[name])
        try:
            if not loaded:
                await page.goto(f"{url}/classify", timeout=120_000)
                await page.get_by_role("heading", name="Classify a photo").first.wait_for(timeout=120_000)
                loaded = True
            start = time.perf_counter()
            await page.locator('input[type="file"]').set_input_files(str(path))
            row = page.locator('[data-testid="stHorizontalBlock"]', has_text=path.name)
            caption = row.get_by_text(re.compile(r"baseline_cnn: \w+ \d+%")).first
            await caption.wait_for(timeout=120_000)
            shown = await _answer(caption, models)
            elapsed = time.perf_counter() - start
            server = page.get_by_text(SERVER_TIME).first
            await server.wait_for(timeout=120_000)
            server_s = float(SERVER_TIME.search(await server.inner_text()).group(1))
            result = {"image": name, "seconds": elapsed, "server_s": server_s, "shown": shown}
            results.append({**result, "error": None})
            await page.locator('[data-testid="stFileChipDeleteBtn"]').first.click(timeout=120_000)
            await row.first.wait_for(state="detached", timeout=120_000)
        except Exception as error:  # counted, not raised: the test reports every failure
            result = {"image": name, "seconds": None, "server_s": None, "shown": {}}
            results.append({**result, "error": type(error).__name__})
            loaded = False  # start the next upload from a fresh page
    await context.close()
    return results


async def _drive(url: str, images: dict[str, bytes], tmp: Path, models: int) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        await _warm(browser, url)
        deadline = time.monotonic() + DURATION_S
        sessions = [_session(browser, url, images, tmp, i, deadline, models) for i in range(SESSIONS)]
        results = await asyncio.gather(*sessions)
        await browser.close()
    return [r for session in results for r in session]


def test_ten_concurrent_sessions_classify_uploads_correctly(dash_root, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    images = {}
    x, _ = synthetic_images(4, seed=11)
    for i, image in enumerate(x):
        buffer = io.BytesIO()
        Image.fromarray(image).resize((96, 96)).save(buffer, "PNG" if i % 2 else "JPEG")
        images[f"img{i}.{'png' if i % 2 else 'jpg'}"] = buffer.getvalue()
    root = Path(os.environ.get("CIFAR_LOAD_ROOT", dash_root)).resolve()
    expected = _expected(root, images)

    with streamlit_server(root, tmp_path) as (url, proc):
        peak = [rss_mb(proc.pid)]

        async def watch():
            while True:
                peak.append(rss_mb(proc.pid))
                await asyncio.sleep(1)

        async def run():
            watcher = asyncio.create_task(watch())
            try:
                return await _drive(url, images, tmp_path, len(next(iter(expected.values()))))
            finally:
                watcher.cancel()

        results = asyncio.run(run())

    errors = [r for r in results if r["error"]]
    wrong = [r for r in results if not r["error"] and r["shown"] != expected[r["image"]]]
    times = np.array([r["seconds"] for r in results if r["seconds"] is not None])
    server = np.array([r["server_s"] for r in results if r["server_s"] is not None])
    print(
        f"\nload test ({root.name}): {SESSIONS} sessions x {DURATION_S:.0f} s: {len(results)} uploads, "
        f"{len(errors)} errors, {len(wrong)} wrong predictions; upload -> predictions shown: "
        f"median {np.median(times):.2f} s, p95 {np.percentile(times, 95):.2f} s, max {times.max():.2f} s; "
        f"server time per upload: median {np.median(server):.2f} s, p95 {np.percentile(server, 95):.2f} s; "
        f"server memory peak {max(peak):.0f} MB"
    )
    assert len(results) >= SESSIONS
    assert not errors, errors[:3]
    assert not wrong, [(r["image"], r["shown"], expected[r["image"]]) for r in wrong[:3]]
