"""``robustness``: a run's accuracy under the CIFAR-10-C corruptions, regenerated."""

import shutil

import pytest

from cifar_core import artifacts
from cifar_core.analysis import robustness
from cifar_core.cli import main


@pytest.fixture
def run_root(folder_run, tmp_path):
    root, run_id = folder_run
    copy = tmp_path / "artifacts"
    shutil.copytree(root, copy)
    return copy, run_id


def test_the_command_measures_stores_and_reuses_a_runs_robustness(run_root, image_folder, capsys):
    root, run_id = run_root
    argv = [
        "robustness",
        run_id,
        "--images",
        "12",
        "--data-dir",
        str(image_folder),
        "--artifacts-dir",
        str(root),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "CIFAR-10-C corruptions, regenerated" in out and "mean corruption accuracy" in out
    stored = artifacts.read_robustness(root, run_id)[12]
    assert stored["images"] == 12 and len(stored["accuracy"]) == 15
    assert all(len(row) == 5 and all(0 <= a <= 1 for a in row) for row in stored["accuracy"].values())
    flat = [a for row in stored["accuracy"].values() for a in row]
    assert stored["mean_corruption_accuracy"] == pytest.approx(sum(flat) / 75)
    assert stored["drop"] == pytest.approx(stored["clean"] - stored["mean_corruption_accuracy"])
    path = artifacts.robustness_path(root, run_id, 12)
    before = path.stat().st_mtime_ns
    assert main(argv) == 0  # stored for this N and this model file: reused, not measured again
    assert path.stat().st_mtime_ns == before
    assert robustness.relative_ce(stored, stored) == pytest.approx(1.0)
    path.write_text('{"images": 12, "accuracy": "not a table"}')  # corrupt: as if not measured
    assert artifacts.read_robustness(root, run_id) == {}
    assert main(argv) == 0 and artifacts.read_robustness(root, run_id)[12]["images"] == 12


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--corruptions", "rain"], "unknown corruption 'rain'"),
        (["--images", "0"], "at least 1"),
        ([], "say which runs"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(run_root, image_folder, capsys, extra, message):
    root, run_id = run_root
    runs = [] if extra == [] else [run_id]
    argv = ["robustness", *runs, *extra, "--data-dir", str(image_folder), "--artifacts-dir", str(root)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert artifacts.read_robustness(root, run_id) == {}


def test_a_lean_run_has_nothing_to_measure(run_root, image_folder, capsys):
    root, run_id = run_root
    artifacts.drop_model(root, run_id)
    argv = ["robustness", run_id, "--data-dir", str(image_folder), "--artifacts-dir", str(root)]
    assert main(argv) == 2
    assert "no model file (a lean run)" in capsys.readouterr().err


def test_show_and_the_run_page_give_the_runs_robustness_row(run_root, image_folder, monkeypatch, capsys):
    from test_dashboard import open_page

    root, run_id = run_root
    assert main(["show", run_id, "--no-architecture", "--artifacts-dir", str(root)]) == 0
    assert "Robustness: not measured" in capsys.readouterr().out
    argv = [
        "robustness",
        run_id,
        "--images",
        "8",
        "--data-dir",
        str(image_folder),
        "--artifacts-dir",
        str(root),
    ]
    assert main(argv) == 0
    assert main(["show", run_id, "--no-architecture", "--artifacts-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "mean corruption accuracy" in out and "worst:" in out
    assert "relative mCE 1.00 against baseline_cnn" in out  # a baseline_cnn run: its own yardstick
    at = open_page(monkeypatch, root, "run")
    assert not at.exception
    assert any(m.label == "mean corruption accuracy" for m in at.metric)


def test_the_robustness_page_renders_with_and_without_results(run_root, image_folder, monkeypatch):
    from test_dashboard import open_page

    root, run_id = run_root
    at = open_page(monkeypatch, root, "robustness")
    assert not at.exception and any("No run is measured yet" in i.value for i in at.info)
    argv = [
        "robustness",
        run_id,
        "--images",
        "10",
        "--data-dir",
        str(image_folder),
        "--artifacts-dir",
        str(root),
    ]
    assert main(argv) == 0
    at = open_page(monkeypatch, root, "robustness")
    assert not at.exception and not at.error
    specs = [str(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(specs) == 3 and "heatmap" in specs[0]
    assert len(at.dataframe[0].value) == 1  # one measured run
    answers = at.dataframe[-1].value
    assert list(answers.columns) == ["model", "truth", "clean", *(f"severity {s}" for s in range(1, 6))]
    at.selectbox(key="robustness_corruption").select("fog").run()
    at.select_slider(key="robustness_severity_pick").set_value(5).run()
    assert not at.exception
    run = artifacts.read_run(root, run_id)
    wrong = robustness.cell_images(run, 10, "fog", 5)
    assert wrong and all(truth != guess for _, _, truth, guess in wrong)
    assert len(at.get("image")) == len(wrong) + 6  # the cell's mistakes, then clean + 5 severities
