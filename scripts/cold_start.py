"""Every dashboard page's first visit, timed against the floor: a one-file Streamlit app.

    python scripts/cold_start.py [--artifacts artifacts] [--tries 3] [--no-data]
                                 [--pages leaderboard,classify] [--markdown docs/benchmarks/cold-start.md]

Each figure is a first visit to a fresh ``streamlit run`` server in headless Chromium
(Debian's ``/usr/bin/chromium``), timed from ``goto`` until the page's first useful content
is drawn (``PAGES``: its table, chart, upload box or message). The floor is the same for an
app that is a title, a 3-row dataframe and a button, in the same sitting; each page's figure
is given above it. Then, on one more fresh server:
- **warm switches**: from the Leaderboard, a click on every other page in the sidebar, timed
  until that page's content is drawn;
- **Classify's answers**: every model's answer after the first upload, the same for a second
  visitor's photo, and for a second upload in the first visitor's session (two photos shown).
``--no-data`` serves a copy of the artifacts whose data folder cannot be found (thumbnails
only). ``--markdown`` writes the table the docs show. Needs playwright (requirements-dev).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from streamlit_server import CHROMIUM, CHROMIUM_FLAGS, streamlit_server  # noqa: E402

ALERT = '[data-testid="stAlert"]'
CHART = '[data-testid="stPlotlyChart"] .main-svg'
TABLE = '[data-testid="stDataFrame"]'
PAGES = {  # url path: (sidebar title, first useful content); a message counts where it is all there is
    "": ("Leaderboard", TABLE),
    "run": ("Run", '[data-testid="stTable"]'),
    "curves": ("Training curves", CHART),
    "training_now": ("Training now", f"{TABLE}, {ALERT}"),
    "per_class": ("Per-class & confusion", CHART),
    "mistakes": ("Mistakes (cat vs dog)", CHART),
    "classify": ("Classify a photo", '[data-testid="stFileUploader"] input[type="file"]'),
    "compare": ("Compare two models", f'[data-testid="stTable"], {ALERT}'),
    "agreement": ("Agreement", CHART),
    "map": ("Map of the test set", f"{CHART}, {ALERT}"),
    "data": ("The data", CHART),
    "ladder": ("Ladders", f"{CHART}, {ALERT}"),
    "tuning": ("Tuning", f"{CHART}, {ALERT}"),
    "robustness": ("Robustness", f"{TABLE}, {ALERT}"),
}
FLOOR_APP = """import pandas as pd
import streamlit as st

st.title("Floor")
st.dataframe(pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]}))
st.button("A button")
"""
FLOOR_CHART_APP = """import plotly.graph_objects as go
import streamlit as st

st.title("Floor with a chart")
st.plotly_chart(go.Figure(go.Bar(x=["a", "b", "c"], y=[3, 1, 2])))
"""
ANSWERS = ("first upload", "second visitor", "second upload")
GOAL_ABOVE_FLOOR_S, GOAL_WARM_S = 1.0, 0.5
SHOWN = """(args) => {
    const [path, selector] = args;
    if (!window.location.pathname.replace(/\\/$/, "").endsWith(path)) return false;
    return [...document.querySelectorAll(selector)].some(
        (e) => !e.closest('[data-stale="true"]') && e.getClientRects().length > 0);
}"""


def _wait_shown(page, path: str, selector: str, timeout_s: float = 180) -> None:
    page.wait_for_function(SHOWN, arg=["/" + path if path else "", selector], timeout=timeout_s * 1000)


def _idle(page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=180_000)


def _context(browser):
    return browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()


def cold(browser, root: Path, logs: Path, path: str, selector: str, app: Path | None = None) -> float:
    """Seconds from the first visit to a fresh server until ``selector`` is drawn."""
    with streamlit_server(root, logs, app=app) as (url, _):
        page = _context(browser)
        start = time.perf_counter()
        page.goto(f"{url}/{path}")
        _wait_shown(page, path, selector)
        return time.perf_counter() - start


def warm_switches(page, url: str) -> dict[str, float]:
    """From the Leaderboard, seconds for each other page's content after its sidebar click."""
    page.goto(url)
    _wait_shown(page, "", PAGES[""][1])
    _idle(page)
    out = {}
    for path, (_, selector) in PAGES.items():
        if not path:
            continue
        link = page.locator(f'[data-testid="stSidebarNav"] a[href$="/{path}"]')
        start = time.perf_counter()
        link.click()
        _wait_shown(page, path, selector)
        out[path] = time.perf_counter() - start
        _idle(page)
    return out


def _answers(page, names: list[str], timeout_s: float = 180) -> float:
    """Seconds until every photo in ``names`` has every model's answer (no model loading)."""
    start = time.perf_counter()
    page.wait_for_function(
        """(names) => {
            const text = document.body.innerText;
            const verdicts = [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
                .filter((e) => !e.closest('[data-stale="true"]'))
                .filter((e) => /^\\d+\\/\\d+ models say/.test(e.innerText));
            return names.every((n) => text.includes(n)) && !text.includes('Still loading')
                && !text.includes('models are loading') && verdicts.length >= names.length;
        }""",
        arg=names,
        timeout=timeout_s * 1000,
    )
    return time.perf_counter() - start


def answers(browser, url: str, photos: list[Path]) -> dict[str, float]:
    """Classify's answers on a fresh server: the first upload (as soon as the box is there),
    a second visitor's photo, a second upload in the first visitor's session."""
    box = '[data-testid="stFileUploader"] input[type="file"]'
    first = _context(browser)
    first.goto(f"{url}/classify")
    first.locator(box).wait_for(state="attached", timeout=180_000)
    first.locator(box).set_input_files(str(photos[0]))
    out = {"first upload": _answers(first, [photos[0].name])}
    _idle(first)
    second = _context(browser)
    second.goto(f"{url}/classify")
    second.locator(box).wait_for(state="attached", timeout=180_000)
    _idle(second)
    second.locator(box).set_input_files(str(photos[1]))
    out["second visitor"] = _answers(second, [photos[1].name])
    first.locator(box).set_input_files([str(photos[0]), str(photos[1])])
    out["second upload"] = _answers(first, [photos[0].name, photos[1].name])
    return out


def one_try(root: Path, logs: Path, photos: list[Path], pages: list[str]) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    floor, chart = logs / "floor_app.py", logs / "floor_chart_app.py"
    floor.write_text(FLOOR_APP)
    chart.write_text(FLOOR_CHART_APP)
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        out["floor"] = cold(browser, root, logs, "", TABLE, app=floor)
        out["chart floor"] = cold(browser, root, logs, "", CHART, app=chart)
        for path in pages:
            out[path] = cold(browser, root, logs, path, PAGES[path][1])
        with streamlit_server(root, logs) as (url, _):
            page = _context(browser)
            out.update({f"warm {path}": s for path, s in warm_switches(page, url).items()})
        with streamlit_server(root, logs) as (url, _):
            out.update(answers(browser, url, photos))
        browser.close()
    return out


def _range(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def table(tries: list[dict[str, float]], cpu: str, models: int, command: str, no_data: bool) -> str:
    """The docs' table: each page's cold median and its distance above the floor, the warm
    switch to it, Classify's answers; the CPU, the models and the command named."""
    med = {key: statistics.median(t[key] for t in tries) for key in tries[0]}
    floor = med["floor"]
    data = "no data folder (thumbnails only)" if no_data else "data folder here"
    lines = [
        f"CPU: {cpu}. {models} models; {data}; "
        f"median of {len(tries)} tries, {datetime.date.today().isoformat()}, `{command}`.",
        "",
        f"Goals: first useful content within {GOAL_ABOVE_FLOOR_S:.1f} s of the floor; "
        f"a warm switch within {GOAL_WARM_S:.1f} s.",
        "",
        "| page | cold (s) | range (s) | above the floor (s) | warm switch (s) |",
        "| --- | --- | --- | --- | --- |",
        f"| floor: one-file app | {floor:.2f} | {_range([t['floor'] for t in tries])} | | |",
    ]
    if "chart floor" in med:  # what any page whose first content is a plotly chart pays on top
        above = med["chart floor"] - floor
        lines.append(
            f"| floor with a plotly chart | {med['chart floor']:.2f} | "
            f"{_range([t['chart floor'] for t in tries])} | {above:+.2f} | |"
        )
    for path, (title, _) in PAGES.items():
        if path not in med:
            continue
        warm = f"{med[f'warm {path}']:.2f}" if f"warm {path}" in med else ""
        above = med[path] - floor
        lines.append(
            f"| {title} | {med[path]:.2f} | {_range([t[path] for t in tries])} | {above:+.2f}"
            f"{'' if above <= GOAL_ABOVE_FLOOR_S else ' (over)'} | {warm} |"
        )
    lines += ["", "| Classify: every model's answer | median (s) | range (s) |", "| --- | --- | --- |"]
    lines += [
        f"| {key} | {med[key]:.2f} | {_range([t[key] for t in tries])} |" for key in ANSWERS if key in med
    ]
    return "\n".join(lines) + "\n"


def _without_data(root: Path, logs: Path) -> Path:
    """A hard-linked copy of ``root`` in a folder where its runs' data folder is not found."""
    copy = logs / "no-data" / "artifacts"
    shutil.copytree(root, copy, copy_function=os.link)
    return copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--pages", default=",".join(p or "leaderboard" for p in PAGES))
    parser.add_argument("--no-data", action="store_true", help="serve a copy whose data folder is not found")
    parser.add_argument("--markdown", help="write the table into this file, between its markers")
    parser.add_argument("--label", default="after", help="which block of --markdown to replace")
    args = parser.parse_args(argv)
    from PIL import Image
    from skimage import data as skimage_data

    from cifar_core import runtime

    pages = ["" if p == "leaderboard" else p for p in args.pages.split(",")]
    unknown = [p for p in pages if p not in PAGES]
    if unknown:
        parser.error(f"unknown page(s) {unknown}: one of {', '.join(p or 'leaderboard' for p in PAGES)}")
    logs = Path(tempfile.mkdtemp(prefix="cold-start-"))
    photos = []
    for name, image in (("chelsea.jpg", skimage_data.chelsea()), ("coffee.jpg", skimage_data.coffee())):
        Image.fromarray(image).save(logs / name, quality=90)
        photos.append(logs / name)
    root = Path(args.artifacts).resolve()
    if args.no_data:
        root = _without_data(root, logs)
    models = models_with_files(root)
    cpu = runtime.cpu_model()
    print(f"{models} models in {root}; CPU: {cpu}; logs in {logs}", flush=True)
    tries = []
    for i in range(args.tries):
        figures = one_try(root, logs, photos, pages)
        tries.append(figures)
        print(
            f"try {i + 1}: " + ", ".join(f"{k or 'leaderboard'} {v:.2f} s" for k, v in figures.items()),
            flush=True,
        )
    command = "python scripts/cold_start.py " + " ".join(argv if argv is not None else sys.argv[1:])
    cpu = f"{cpu} ({cpu_detail()})"
    text = table(tries, cpu, models, command.strip(), args.no_data)
    print(text)
    if args.markdown:
        write_block(Path(args.markdown), args.label, text)
    return 0


def write_block(path: Path, label: str, text: str) -> None:
    """Put ``text`` between ``<!-- cold-start:LABEL -->`` and ``<!-- /cold-start:LABEL -->``
    in ``path`` (appended when the markers are not there yet)."""
    begin, end = f"<!-- cold-start:{label} -->", f"<!-- /cold-start:{label} -->"
    old = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text}{end}"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end) :]
    else:
        new = f"{old.rstrip()}\n\n{block}\n" if old.strip() else f"{block}\n"
    path.write_text(new)


def read_block(path: Path, label: str) -> str:
    """The table last written to ``path`` under ``label`` (empty when none)."""
    text = path.read_text()
    begin, end = f"<!-- cold-start:{label} -->", f"<!-- /cold-start:{label} -->"
    return text[text.index(begin) + len(begin) : text.index(end)].strip() if begin in text else ""


def cpu_detail() -> str:
    """Family, model, cores and widest vector instructions, as lscpu names them."""
    from cifar_core import runtime

    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    where = f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}, "
    return f"{where}{os.cpu_count()} vCPUs, {', '.join(runtime.cpu_features()) or 'no AVX2'}"


def models_with_files(root: Path) -> int:
    """The models that answer a photo: zoo runs with a model file and no stored code of
    their own (those need the sidebar's trust switch)."""
    from cifar_core import artifacts

    runs, _ = artifacts.load_runs(root)
    return sum(1 for run in runs if run.has_model and not run.code_files and not artifacts.is_ladder_run(run))


if __name__ == "__main__":
    raise SystemExit(main())
