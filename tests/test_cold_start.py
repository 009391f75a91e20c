"""The cold-start table (scripts/cold_start.py): its pages are the dashboard's, its format
is what the docs show, and the docs' table is one it wrote."""

from __future__ import annotations

import ast
import re
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import cold_start  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks" / "cold-start.md"
ROW = re.compile(r"^\| (?P<page>[^|]+) \| (?P<cold>\d+\.\d\d) \| (?P<lo>\d+\.\d\d)-(?P<hi>\d+\.\d\d) \|")


def app_pages() -> dict[str, str]:
    """url path -> title of every st.Page in dashboard/app.py (the default page's path is "")."""
    pages = {}
    for node in ast.walk(ast.parse((ROOT / "dashboard" / "app.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Page":
            words = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
            path = (
                ""
                if words.get("default")
                else words.get("url_path") or node.args[0].value.split("/")[-1][:-3]
            )
            pages[path] = words["title"]
    return pages


def test_the_script_times_every_page_of_the_dashboard_under_its_sidebar_title():
    assert {path: title for path, (title, _) in cold_start.PAGES.items()} == app_pages()


def _rows(text: str) -> dict[str, dict]:
    return {m["page"]: m.groupdict() for m in map(ROW.match, text.splitlines()) if m}


def test_the_table_gives_each_page_above_the_floor_and_marks_what_misses_its_goal():
    tries = []
    for i in range(3):
        figures = {
            "floor": 2.0 + i / 100,
            "chart floor": 2.4,
            "": 2.5,
            "classify": 3.2 + i,
            "warm classify": 0.2,
        }
        tries.append({**figures, "first upload": 1.0, "second visitor": 0.3, "second upload": 0.6})
    text = cold_start.table(tries, "Some CPU (family 1 model 2)", 12, "python scripts/cold_start.py", False)
    assert text.startswith("CPU: Some CPU (family 1 model 2). 12 models; data folder here; median of 3 tries")
    rows = _rows(text)
    assert rows["floor: one-file app"]["cold"] == "2.01"
    assert rows["Leaderboard"]["cold"] == "2.50" and "| +0.49 |" in text
    assert rows["floor with a plotly chart"]["cold"] == "2.40" and "| +0.39 | |" in text
    assert rows["Classify a photo"]["lo"] == "3.20" and rows["Classify a photo"]["hi"] == "5.20"
    assert "| +2.19 (over) | 0.20 |" in text
    assert "| second upload | 0.60 | 0.60-0.60 |" in text


def test_the_docs_table_was_written_by_the_script_for_every_page(tmp_path):
    after = cold_start.read_block(DOCS, "after")
    assert after.startswith("CPU: ") and "vCPUs" in after.splitlines()[0], "the CPU is named"
    rows = _rows(after)
    pages = set(rows) - set(cold_start.ANSWERS)
    assert pages == {"floor: one-file app", "floor with a plotly chart", *app_pages().values()}
    for key in cold_start.ANSWERS:
        assert re.search(rf"^\| {key} \| \d+\.\d\d \|", after, re.M), key
    copy = tmp_path / "page.md"
    copy.write_text("# Title\n")
    cold_start.write_block(copy, "after", "x\n")
    cold_start.write_block(copy, "after", "y\n")
    assert copy.read_text() == "# Title\n\n<!-- cold-start:after -->\ny\n<!-- /cold-start:after -->\n"
