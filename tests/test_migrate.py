"""Run format v2 and the one-time migration from v1 (``python -m cifar_core migrate``)."""

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from cifar_core import artifacts
from cifar_core.analysis import report, seeds
from cifar_core.artifacts.migrate import argmax_matching_confusion
from cifar_core.cli import main

COMMITTED = ROOT / "artifacts"


def _as_version_1(path, data_folder):
    """Rewrite a v2 run folder the way version 1 stored it."""
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["schema_version"] = 1
    manifest["data"] = {k: v for k, v in manifest["data"].items() if k not in ("kind", "root")}
    manifest["data"]["source"] = f"image folder {data_folder.resolve()}"
    manifest["config"]["val_size"] = 50  # the automatic split would pick 30 of these 300 images
    manifest["command"] = "/somewhere/cifar_core/__main__.py train --model baseline_cnn --artifacts-dir /x"
    (path / "manifest.json").write_text(json.dumps(manifest))
    metrics = json.loads((path / "metrics.json").read_text())
    metrics["trainable_params"] = 1  # version 1 counted the exported model's phase-1 flags
    (path / "metrics.json").write_text(json.dumps(metrics))
    with np.load(path / "predictions.npz") as stored:
        arrays = {k: stored[k] for k in stored.files if k != "y_pred"}
    np.savez_compressed(path / "predictions.npz", **arrays)
    run_images = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    np.savez(path / "thumbnails.npz", index=np.array([0, 1, 2]), images=run_images)
    return manifest, metrics, arrays


def test_a_version_1_run_migrates_once_with_its_figures_unchanged(
    tmp_path, trained_run, image_folder, capsys
):
    source_root, run_id, _ = trained_run
    root = tmp_path / "art"
    shutil.copytree(source_root / "runs" / run_id, root / "runs" / run_id)
    path = root / "runs" / run_id
    before = {
        name: (path / name).read_bytes() for name in ("history.csv", "per_class.csv", "confusion_matrix.csv")
    }
    old_manifest, old_metrics, old_arrays = _as_version_1(path, image_folder)
    with pytest.raises(artifacts.ArtifactError, match="run `python -m cifar_core migrate`"):
        artifacts.read_run(root, run_id)

    assert main(["migrate", "--artifacts-dir", str(root)]) == 0
    assert capsys.readouterr().out.strip() == f"{run_id}: migrated 1 -> 2"
    run = artifacts.read_run(root, run_id)
    for name, content in before.items():
        assert (path / name).read_bytes() == content, name
    assert run.metrics == {
        **old_metrics,
        "trainable_params": max(p["trainable_params"] for p in run.manifest["phases"]),
    }
    np.testing.assert_array_equal(run.predictions["probs"], old_arrays["probs"].astype(np.float32))
    assert np.array_equal(
        np.bincount(run.predictions["y_true"] * 10 + run.predictions["y_pred"], minlength=100).reshape(
            10, 10
        ),
        run.confusion,
    )
    data = run.manifest["data"]
    assert data["kind"] == "image_folder" and data["source"] == f"image folder {image_folder.name}"
    assert (artifacts.artifacts_root(root).parent / data["root"]).resolve() == image_folder.resolve()
    assert run.manifest["config"]["val_size"] == 50  # not what "automatic" picks here: kept
    assert run.manifest["command"] == "python -m cifar_core train --model baseline_cnn --artifacts-dir /x"
    assert run.thumbnails["index"].tolist() == [0, 1, 2]  # raw pixels re-stored as JPEGs
    with np.load(path / "thumbnails.npz") as stored:
        assert sorted(stored.files) == ["index", "jpeg", "offsets"]
    assert {
        k: v for k, v in run.manifest.items() if k not in ("data", "config", "command", "schema_version")
    } == {k: v for k, v in old_manifest.items() if k not in ("data", "config", "command", "schema_version")}

    assert main(["migrate", "--artifacts-dir", str(root)]) == 0  # once is enough
    assert capsys.readouterr().out.strip() == f"{run_id}: already version 2"


def test_a_run_that_cannot_be_migrated_is_left_untouched(tmp_path, trained_run, image_folder, capsys):
    source_root, run_id, _ = trained_run
    root = tmp_path / "art"
    shutil.copytree(source_root / "runs" / run_id, root / "runs" / run_id)
    path = root / "runs" / run_id
    _as_version_1(path, image_folder)
    metrics = json.loads((path / "metrics.json").read_text())
    del metrics["stored_model"]  # a float32 model never compacted: this version cannot convert it
    (path / "metrics.json").write_text(json.dumps(metrics))
    files = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    assert main(["migrate", "--artifacts-dir", str(root)]) == 2
    assert "never compacted" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()} == files
    assert sorted(p.name for p in (root / "runs").iterdir()) == [run_id]  # no temporary folder left


def test_ties_from_float16_rounding_are_broken_towards_the_confusion_matrix():
    probs = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    y_true = np.array([0, 1, 2])
    # image 1 (true b) tied a/b and the matrix says b: moved; image 0 (true a) stays a
    confusion = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert argmax_matching_confusion(probs, y_true, confusion).tolist() == [0, 1, 2]
    # a matrix no tie can explain leaves the plain argmax alone
    confusion = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert argmax_matching_confusion(probs, y_true, confusion).tolist() == [0, 0, 2]


def test_the_committed_runs_are_version_2_and_read_without_shims():
    runs, bad = artifacts.load_runs(COMMITTED)
    zoo = [r for r in runs if not artifacts.is_ladder_run(r)]
    made = [(r.manifest.get("source") or {}).get("kind") for r in zoo]
    # one group per recipe: each of the eight other zoo models', cnn_bn:tuned, fast and
    # fast:muon8 (their seeds and precisions one group each); one of your own of each way in
    groups = seeds.group_runs([r for r, kind in zip(zoo, made) if kind is None])
    assert not bad and len(groups) == 12 and made.count("builder_file") == made.count("recorded") == 1
    assert sorted(g.label for g in groups if g.label.startswith("fast")) == [
        "fast",
        "fast:muon8",
        "fast:robust",
    ]
    assert sum(1 for r in zoo if r.manifest.get("study")) == 1
    for run in runs:
        assert run.manifest["schema_version"] == 2
        assert run.manifest["data"]["kind"] == "image_folder"
        assert run.manifest["data"]["root"] == "../shared/data/cifar10-jpeg"
        # 5,000 of 50,000 ("automatic"), or 0: a final fit on all of train (issue 32's 50k runs)
        assert run.manifest["config"]["val_size"] in (None, 0)
        assert "/work/" not in json.dumps(run.manifest["data"])  # no machine's absolute path
        with np.load(run.path / artifacts.PREDICTIONS) as stored:
            assert "y_pred" in stored.files  # stored, not reconstructed
        # accuracy from the stored predictions is the recorded one, image by image
        assert np.isclose(
            (run.predictions["y_pred"] == run.predictions["y_true"]).mean(), run.metrics["test"]["accuracy"]
        )
    table = report.runs_table(runs)
    assert table["test_acc"].is_monotonic_decreasing


def test_csv_and_json_of_a_migrated_run_are_what_pandas_reads_back():
    run = artifacts.read_run(COMMITTED, "cnn_bn-30434192")
    pd.testing.assert_frame_equal(
        run.history, pd.read_csv(io.StringIO((run.path / "history.csv").read_text()))
    )
