"""ONNX exports (cifar_core.serving.exports): parity with the Keras model, where they live, the
fallback to Keras, the ``export`` command, and that reading pages never import TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from conftest import ROOT, synthetic_images

from cifar_core import artifacts
from cifar_core.cli import main
from cifar_core.errors import ExportError, ModelLoadError
from cifar_core.serving import exports
from cifar_core.serving.inference import OnnxPredictor, Predictor, PredictorPool, load_model


@pytest.fixture()
def own_run(tmp_path, trained_run, monkeypatch):
    """A copy of the tiny trained run, and a cache of its own (no export yet)."""
    root, run_id, _ = trained_run
    shutil.copytree(root, tmp_path / "artifacts")
    monkeypatch.setenv("CIFAR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "artifacts", run_id


def test_an_export_matches_its_keras_model_and_its_report_goes_into_the_manifest(own_run):
    root, run_id = own_run
    run = artifacts.read_run(root, run_id)
    report = exports.export_run(root, run_id)
    path = exports.find_export(run.model_path)
    assert path is not None and path.parent == exports.exports_dir() and path.suffix == ".onnx"
    assert report["top1_agreement"] == 1.0 and report["max_prob_diff"] <= exports.MAX_PROB_DIFF
    assert report["n_images"] > 0 and report["model_sha256"] == path.stem
    recorded = artifacts.read_manifest(root, run_id)["exports"]["onnx"]
    assert recorded["file"] == path.name and recorded["max_prob_diff"] == report["max_prob_diff"]
    # Served without TensorFlow's Predictor: the same answers on images it was not checked on.
    x, _ = synthetic_images(40, seed=5)
    keras_probs = Predictor(load_model(run.model_path))(x)
    onnx_probs = OnnxPredictor(path)(x)
    assert onnx_probs.shape == keras_probs.shape and onnx_probs.dtype == np.float32
    assert np.abs(onnx_probs - keras_probs).max() < 1e-4
    assert (onnx_probs.argmax(1) == keras_probs.argmax(1)).all()


def test_an_export_follows_its_model_files_content_not_its_path(own_run, tmp_path, monkeypatch):
    root, run_id = own_run
    run = artifacts.read_run(root, run_id)
    exports.export_run(root, run_id, record=False)
    assert "exports" not in artifacts.read_manifest(root, run_id)  # --cache-only left the run as it was
    copy = tmp_path / "elsewhere" / "model.keras"
    copy.parent.mkdir()
    shutil.copyfile(run.model_path, copy)
    assert exports.find_export(copy) == exports.find_export(run.model_path) is not None
    with open(copy, "ab") as handle:  # a changed model file is never served by the old export
        handle.write(b"\0")
    assert exports.find_export(copy) is None
    # A second export of the same file converts nothing.
    monkeypatch.setattr(exports, "convert", lambda *a: pytest.fail("converted again"))
    assert exports.export_run(root, run_id)["top1_agreement"] == 1.0


def test_an_export_that_disagrees_with_keras_is_removed_and_never_served(own_run, monkeypatch):
    root, run_id = own_run
    run = artifacts.read_run(root, run_id)
    real = exports.parity
    monkeypatch.setattr(exports, "parity", lambda *a: {**real(*a), "max_prob_diff": 0.3})
    with pytest.raises(ExportError, match="differs from the Keras model"):
        exports.export_run(root, run_id)
    assert exports.find_export(run.model_path) is None
    assert not exports.export_path(run.model_path).exists()
    assert "exports" not in artifacts.read_manifest(root, run_id)


def test_a_missing_or_broken_export_falls_back_to_keras_with_one_warning(own_run):
    root, run_id = own_run
    run = artifacts.read_run(root, run_id)
    pool = PredictorPool(exported=True)
    with pytest.warns(UserWarning, match="no checked export"):
        predict = pool.get(run.model_path)
    assert isinstance(predict, Predictor) and "no checked export" in pool.fallbacks[str(run.model_path)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per model: the second call is the same model
        assert pool.get(run.model_path) is predict
    exports.export_run(root, run_id)
    assert isinstance(PredictorPool(exported=True).get(run.model_path), OnnxPredictor)
    exports.export_path(run.model_path).write_bytes(b"not an onnx file")  # its report still passes
    pool = PredictorPool(exported=True)
    with pytest.warns(UserWarning, match="cannot load the export"):
        assert isinstance(pool.get(run.model_path), Predictor)


def test_the_export_command_checks_reports_copies_and_refuses_bad_input(own_run, tmp_path, capsys):
    root, run_id = own_run
    where = ["--artifacts-dir", str(root)]
    assert main(["export", "--format", "tflite", run_id, *where]) == 2
    assert "LiteRT" in capsys.readouterr().err
    assert main(["export", *where]) == 2 and "RUN... or --all" in capsys.readouterr().err
    assert main(["export", "no-such-run", *where]) == 2 and "no-such-run" in capsys.readouterr().err
    assert not exports.exports_dir().exists()  # nothing written by a refused command
    assert main(["export", run_id, "--out", str(tmp_path / "deploy"), "--sample", "20", *where]) == 0
    out = capsys.readouterr().out
    assert "top-1 agreement 100.00%" in out and "on 20 test images" in out
    assert (tmp_path / "deploy" / f"{run_id}.onnx").is_file()
    assert main(["export", "--list", *where]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if run_id in line)
    assert "| 20 test images (20 of" in row and "100.00%" in row


def test_train_exports_the_new_run_and_a_failed_export_leaves_it_intact(own_run, monkeypatch, capsys):
    from cifar_core.training.record import export_new_run

    root, run_id = own_run
    monkeypatch.setattr(exports, "export_run", lambda *a, **k: (_ for _ in ()).throw(ExportError("boom")))
    before = sorted(p.name for p in (root / "runs" / run_id).iterdir())
    export_new_run(root, run_id)
    out = capsys.readouterr().out
    assert "the run is complete, but export failed: boom" in out
    assert f"python -m cifar_core export {run_id}" in out
    assert sorted(p.name for p in (root / "runs" / run_id).iterdir()) == before


def test_a_run_trained_from_the_command_line_is_exported(folder_run):
    root, run_id = folder_run
    run = artifacts.read_run(root, run_id)
    report = run.manifest["exports"]["onnx"]
    assert report["top1_agreement"] == 1.0 and report["checked_on"] == "test images"
    assert exports.find_export(run.model_path) is not None


ZOO = ["baseline_cnn", "cnn_bn", "cnn_4block", "vgg10", "deep_cnn", "resnet20", "fast"]
# Lite0 (27 s here) is checked on all 5,000 test images by the committed run's export report.
SLOW_ZOO = [pytest.param("efficientnet_lite0", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", ZOO + SLOW_ZOO)
def test_every_zoo_architecture_exports_with_parity(name, tmp_path):
    """Each zoo model (random weights; the frozen Lite0 is the same graph as Lite0) converts,
    and ONNX Runtime gives the Keras model's probabilities on a sample of images."""
    import keras

    from cifar_core.models import create_model, get_spec

    model = create_model(name, **({"weights": "none"} if get_spec(name).is_transfer else {}))
    path = exports.convert(model, tmp_path / f"{name}.onnx")
    x = np.random.default_rng(0).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    report = exports.parity(Predictor(model), OnnxPredictor(path), x)
    keras.backend.clear_session()
    assert report["max_prob_diff"] < exports.MAX_PROB_DIFF and report["top1_agreement"] == 1.0, report


def test_the_reading_pages_never_import_tensorflow(dash_root, tmp_path):
    """The app, its first visit and every reading page (a prediction on Classify included)
    in a fresh process: TensorFlow and Keras stay out of ``sys.modules``."""
    script = tmp_path / "pages.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys
            from streamlit.testing.v1 import AppTest
            pages = ["leaderboard", "curves", "mistakes", "compare", "agreement", "data", "classify"]
            at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
            seen = {}
            for page in pages:
                at.switch_page(f"views/{page}.py").run()
                if page == "classify":
                    from common import loading, serving
                    from cifar_core import artifacts
                    for run in artifacts.load_runs(loading.artifacts_dir())[0]:
                        serving.predictor_for(run)  # every model loaded: the answers are all there
                    at.button(key="cls_random").click().run()
                seen[page] = {
                    "errors": [e.value for e in at.exception] + [e.value for e in at.error],
                    "tables": len(at.dataframe),
                    "tf": sorted(m for m in ("tensorflow", "keras") if m in sys.modules),
                }
            print(json.dumps(seen))
            """
        )
    )
    env = {**os.environ, "CIFAR_ARTIFACTS": str(dash_root), "PYTHONPATH": str(ROOT / "dashboard")}
    done = subprocess.run(
        [sys.executable, str(script), str(ROOT / "dashboard" / "app.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    for page, facts in seen.items():
        assert facts["errors"] == [], (page, facts)
        assert facts["tf"] == [], (page, facts)
    assert seen["classify"]["tables"] >= 1  # the random test image was classified, by the exports


def test_a_model_with_untrusted_code_and_no_export_is_refused_before_keras_loads(own_run):
    root, run_id = own_run
    run = artifacts.read_run(root, run_id)
    (run.path / "source").mkdir()
    (run.path / "source" / "my_layers.py").write_text("raise SystemExit('never imported')\n")
    pool = PredictorPool(exported=True)
    with pytest.raises(ModelLoadError, match="my_layers.py"):
        pool.get(run.model_path)
    assert str(run.model_path) not in pool.fallbacks  # refused, not served by Keras
