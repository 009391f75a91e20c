"""A run's card (issue 30): the classification report, FLOPs, the Run page and ``show``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from cifar_core import artifacts
from cifar_core.analysis import architecture, runcard
from cifar_core.cli import main

COMMITTED = ROOT / "artifacts"
# The page alone, not the app: the app's first visit loads every committed model in the
# background, which this test does not need (the Run page loads one only to time it).
RUN_PAGE = str(ROOT / "dashboard" / "views" / "run.py")


def test_the_report_is_scikit_learns_on_the_stored_predictions(trained_run):
    from sklearn.metrics import classification_report

    root, run_id, _ = trained_run
    run = artifacts.read_run(root, run_id)
    table = runcard.classification_report(run)
    expected = classification_report(
        run.predictions["y_true"],
        run.predictions["y_pred"],
        labels=list(range(10)),
        target_names=run.class_names,
        output_dict=True,
        zero_division=0,
    )
    assert list(table.index) == [*run.class_names, "accuracy", "macro avg", "weighted avg"]
    for name in [*run.class_names, "macro avg", "weighted avg"]:
        for column in ("precision", "recall", "f1-score", "support"):
            assert table.loc[name, column] == pytest.approx(expected[name][column])
    assert table.loc["accuracy", "f1-score"] == pytest.approx(expected["accuracy"])
    assert runcard.classification_report_text(run).splitlines()[0].split() == [
        "precision",
        "recall",
        "f1-score",
        "support",
    ]


def _hand_multiply_adds(model) -> dict[str, int]:
    """Multiply-adds of the convolutions and dense layers, counted from their shapes."""
    import keras

    counts = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            counts[layer.name] = h * w * c_out * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            counts[layer.name] = layer.input.shape[-1] * layer.units
    return counts


def test_flops_match_a_hand_count_of_baseline_cnn_and_resnet20s_published_figure():
    from cifar_core.models import create_model

    model = create_model("baseline_cnn")
    table = architecture.layer_table(model).set_index("layer")
    hand = _hand_multiply_adds(model)
    for name, macs in hand.items():
        outputs = int(np.prod(model.get_layer(name).output.shape[1:]))
        extra = table.loc[name, "flops"] - (2 * macs + outputs)  # a multiply-add is 2, + the bias
        assert 0 <= extra <= 5 * outputs, name  # and the output's softmax (the profiler: 5 per value)
    total = architecture.totals(architecture.layer_table(model))
    assert total["params"] == model.count_params()
    assert 2 * sum(hand.values()) <= total["flops"] <= 2.02 * sum(hand.values())

    resnet = architecture.totals(architecture.layer_table(create_model("resnet20")))
    assert 40e6 <= resnet["multiply_adds"] <= 42e6  # He et al.: about 41 million at 32x32


def test_a_transfer_models_backbone_is_one_row_with_its_layers_inside():
    import keras

    from cifar_core.models import create_model

    model = create_model("efficientnet_lite0", weights="none")
    table = architecture.layer_table(model).set_index("layer")
    backbone = table.loc["backbone"]
    assert backbone["params"] == model.get_layer("backbone").count_params()
    assert len(backbone["children"]) == len(model.get_layer("backbone").layers)
    assert backbone["flops"] == sum(c["flops"] for c in backbone["children"]) > 0.9 * table["flops"].sum()
    assert isinstance(model.get_layer("backbone"), keras.Model)


def test_training_notes_say_what_the_callbacks_did_and_why_not(trained_run):
    root, run_id, _ = trained_run
    notes = " ".join(runcard.training_notes(artifacts.read_run(root, run_id)))
    # baseline_cnn: plateau schedule, early stopping patience 5, two epochs
    assert "ReduceLROnPlateau never fired" in notes and "Early stopping never fired" in notes
    history = pd.DataFrame({"epoch": [0, 1, 2, 3], "learning_rate": [1e-3, 1e-3, 5e-4, 5e-4]})
    assert runcard.lr_cuts(history) == [2]


def test_show_prints_the_card_and_predict_prints_all_ten_classes(trained_run, capsys, tmp_path):
    from PIL import Image

    root, run_id, _ = trained_run
    assert main(["show", run_id, "--artifacts-dir", str(root)]) == 0
    out = capsys.readouterr().out
    for part in ("Reproduce", "Architecture", "FLOPs per image", "macro avg", "weighted avg", "Files"):
        assert part in out, part
    photo = tmp_path / "cat.png"
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(photo)
    assert main(["predict", "--run", run_id, "--all-classes", str(photo), "--artifacts-dir", str(root)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(lines) == 10 and {line.split()[0] for line in lines} == set(
        artifacts.read_run(root, run_id).class_names
    )


KINDS = {
    "zoo": lambda r: r.model == "resnet20",
    "rung": lambda r: not r.has_model,
    "transfer": lambda r: r.model == "efficientnet_lite0",
    "builder": lambda r: (r.manifest.get("source") or {}).get("kind") == "builder_file",
    "recorded": lambda r: r.manifest["family"] == "recorded",
}


def test_the_run_page_renders_every_kind_of_committed_run(monkeypatch):
    runs = artifacts.load_runs(COMMITTED)[0]
    monkeypatch.setenv("CIFAR_ARTIFACTS", str(COMMITTED))
    at = AppTest.from_file(RUN_PAGE, default_timeout=180)
    for kind, pick in KINDS.items():
        run = next(r for r in runs if pick(r))
        at.query_params["run"] = run.run_id  # the address names the run: the page follows it
        at.run()
        assert not at.exception, (kind, [e.value for e in at.exception])
        assert at.header[0].value == run.label, kind
        assert at.metric[0].value == f"{run.metrics['test']['accuracy']:.2%}", kind
        assert not at.warning, (kind, [w.value for w in at.warning])  # the architecture was available
        tails = [list(d.value.index[-3:]) for d in at.dataframe]
        assert ["accuracy", "macro avg", "weighted avg"] in tails, kind  # the classification report
        first = runcard.top_confusions(run).iloc[0]
        at.button(key=f"run_conf_{first['true']}_{first['predicted']}").click().run()
        shown = [m.value for m in at.markdown if "predicted as" in m.value]
        assert shown and f"{first['true']} predicted as {first['predicted']}**: {first['images']}" in shown[0]
        if kind == "transfer":
            assert any("backbone" in e.label for e in at.expander)
    at.query_params["run"] = "no-such-run"
    at.run()
    assert not at.exception and "no-such-run" in at.warning[0].value


def test_a_trained_run_stores_its_layer_table_and_pages_read_it_without_tensorflow(trained_run, tmp_path):
    import subprocess
    import sys

    from cifar_core.serving.inference import load_model

    root, run_id, _ = trained_run
    run = artifacts.read_run(root, run_id)
    stored, total = runcard.architecture_of(run)
    computed = architecture.layer_table(load_model(run.model_path))
    assert stored.drop(columns="children").equals(computed.drop(columns="children"))
    assert total == architecture.totals(computed)
    # A fresh process reads it (and the card) without importing TensorFlow.
    code = (
        "import sys; from pathlib import Path; from cifar_core import artifacts; "
        "from cifar_core.analysis import runcard; "
        f"t, tot = runcard.architecture_of(artifacts.read_run(Path({str(root)!r}), {run_id!r})); "
        "assert tot['flops'] > 0 and len(t) > 2; assert 'tensorflow' not in sys.modules, 'imported TF'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_every_committed_run_stores_its_layer_table():
    runs = artifacts.load_runs(COMMITTED)[0]
    assert runs
    for run in runs:
        record = artifacts.read_architecture(run)
        assert record is not None, f"{run.run_id}: no {artifacts.ARCHITECTURE} (python -m cifar_core migrate)"
        assert sum(row["params"] for row in record["layers"]) == run.metrics["params"], run.run_id


def test_a_corrupt_layer_table_is_a_clear_error_and_migrate_makes_a_missing_one(
    trained_run, tmp_path, capsys
):
    import shutil

    from cifar_core.errors import ArtifactError

    root, run_id, _ = trained_run
    copy = tmp_path / "artifacts"
    shutil.copytree(root, copy)
    run = artifacts.read_run(copy, run_id)
    path = run.path / artifacts.ARCHITECTURE
    wanted = artifacts.read_architecture(run)
    path.write_text('{"layers": [{"layer": "x"}], "total_flops": 1}')
    with pytest.raises(ArtifactError, match="architecture.json.*every layer needs"):
        runcard.architecture_of(run)
    path.unlink()
    assert main(["migrate", "--artifacts-dir", str(copy)]) == 0
    assert f"{run_id}: already version 2; layer table recorded" in capsys.readouterr().out
    assert artifacts.read_architecture(run) == wanted
