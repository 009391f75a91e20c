"""Cold and warm figures of the dashboard, as a newcomer meets it (issue 31's method).

    python scripts/cold_start.py [--artifacts artifacts] [--tries 3] [--photo photo.jpg]

Each try starts a fresh ``streamlit run dashboard/app.py`` (headless Chromium from Debian,
``/usr/bin/chromium``) and measures from the first visit:
- **leaderboard**: seconds until the Leaderboard's table is drawn (first visit to ``/``);
- then, on a second fresh server, **classify box**: seconds until the Classify page's upload
  box appears (first visit to ``/classify``); **all answers**: seconds from uploading a photo
  as soon as the box is there until every model has answered (no model still loading);
  **warm**: a second visitor on that server (the models loaded) uploads another photo:
  seconds until its answers are drawn, and **warm server**: the server's own time for that
  answer (the page's caption).
Prints one line per try and the medians, with the CPU. Needs playwright (requirements-dev).
The models' exports must already be on this machine for the exported path (``python -m
cifar_core export --all``); without them the first visit exports them (once).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from streamlit_server import CHROMIUM, CHROMIUM_FLAGS, streamlit_server  # noqa: E402


def models_with_files(root: Path) -> int:
    """The models that answer a photo: zoo runs with a model file and no stored code of
    their own (those need the sidebar's trust switch)."""
    from cifar_core import artifacts

    runs, _ = artifacts.load_runs(root)
    return sum(1 for run in runs if run.has_model and not run.code_files and not artifacts.is_ladder_run(run))


def _idle(page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=180_000)


def _answers(page, name: str, timeout_s: float = 180) -> tuple[float, str]:
    """Seconds until photo ``name`` has every model's answer: its verdict is drawn and no
    model is still loading; and the verdict ("11/12 models say cat")."""
    start = time.perf_counter()
    try:  # the upload's script run starts (its answers are not drawn before it ends)
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="running"]', timeout=10_000)
    except Exception:  # noqa: BLE001 -- already over: the condition below still holds
        pass
    page.wait_for_function(
        """(name) => document.querySelector('[data-testid="stApp"]').dataset.testScriptState !== 'running'
            && document.body.innerText.includes(name)
            && !document.body.innerText.includes('Still loading')
            && [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
               .some(e => /^\\d+\\/\\d+ models say/.test(e.innerText))""",
        arg=name,
        timeout=timeout_s * 1000,
    )
    seconds = time.perf_counter() - start
    verdict = page.get_by_text(re.compile(r"^\d+/\d+ models say")).last.inner_text()
    return seconds, verdict


def one_try(root: Path, photos: list[Path], logs: Path) -> dict:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        with streamlit_server(root, logs) as (url, _):
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            start = time.perf_counter()
            page.goto(url)
            page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=180_000)
            out["leaderboard"] = time.perf_counter() - start
        with streamlit_server(root, logs) as (url, _):
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            start = time.perf_counter()
            page.goto(f"{url}/classify")
            box = page.locator('input[type="file"]')
            box.wait_for(state="attached", timeout=180_000)
            out["classify box"] = time.perf_counter() - start
            start = time.perf_counter()
            box.set_input_files(str(photos[0]))
            out["all answers"], verdict = _answers(page, photos[0].name)
            _idle(page)
            # Warm: a second visitor on the same server (models loaded), one photo.
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(f"{url}/classify")
            page.locator('input[type="file"]').wait_for(state="attached", timeout=180_000)
            _idle(page)
            page.locator('input[type="file"]').set_input_files(str(photos[1]))
            out["warm"], _ = _answers(page, photos[1].name)
            server = page.get_by_text(re.compile("^Server time for this answer")).last.inner_text()
            out["warm server"] = float(re.search(r"([\d.]+) s", server).group(1))
            print(f"  {photos[0].name}: {verdict}; {photos[1].name}: {server}", flush=True)
        browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    from PIL import Image
    from skimage import data as skimage_data

    from cifar_core import runtime

    logs = Path(tempfile.mkdtemp(prefix="cold-start-"))
    photos = []
    for name, image in (("chelsea.jpg", skimage_data.chelsea()), ("coffee.jpg", skimage_data.coffee())):
        Image.fromarray(image).save(logs / name, quality=90)
        photos.append(logs / name)
    root = Path(args.artifacts).resolve()
    print(f"{models_with_files(root)} models in {root}; CPU: {runtime.cpu_model()}; logs in {logs}")
    tries = []
    for i in range(args.tries):
        figures = one_try(root, photos, logs)
        tries.append(figures)
        print(f"try {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in figures.items()), flush=True)
    print("median: " + ", ".join(f"{k} {statistics.median(t[k] for t in tries):.2f} s" for k in tries[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
