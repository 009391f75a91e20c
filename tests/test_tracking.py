"""Recording your own ``model.fit`` as a run (cifar_core.training.tracking), and a model with custom
layers: loaded only when its stored code is trusted (``--trust-code``, the dashboard switch)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from test_dashboard import open_page

from cifar_core import artifacts
from cifar_core.errors import ConfigError
from cifar_core.serving.inference import load_model
from cifar_core.training import tracking


def _small_model(keras):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)  # fit sees data.x_train's raw pixels
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="probs")(x))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_recorded_fit_becomes_an_ordinary_run_and_leaves_no_work_folder(tmp_path, image_folder):
    import keras

    data = tracking.load_data(image_folder, val_size=50)
    assert data.x_train.dtype == np.uint8 and len(data.x_val) == 50
    model = _small_model(keras)
    with tracking.Run("my-cnn", data, root=tmp_path) as run:
        model.fit(*(data.x_train, data.y_train), validation_data=data.validation, epochs=2, batch_size=50,
                  callbacks=[run.callback], verbose=0)  # fmt: skip
        assert len(artifacts.work.read_history(run.work)) == 2  # watchable while it trains
        path = run.finish(model)
    recorded = artifacts.read_run(tmp_path, "my-cnn")
    assert path == recorded.path and not (tmp_path / "work" / "my-cnn").exists()
    assert recorded.manifest["family"] == "recorded" and recorded.label == "my-cnn"
    assert recorded.manifest["data"]["checksum"] == data.checksum
    source = recorded.manifest["source"]
    assert source["kind"] == "recorded" and source["fits"][0]["optimizer"] == "Adam"
    assert recorded.manifest["config"]["batch_size"] == 50 and recorded.metrics["epochs_run"] == 2
    assert list(recorded.history["epoch"]) == [0, 1] and recorded.history["val_accuracy"].notna().all()
    stored = load_model(recorded.model_path)
    assert stored.inputs[0].dtype == "uint8"  # raw pixels in, like every stored model
    assert "onnx" in recorded.manifest["exports"]  # exported at the end, as every training is
    expected = model.predict(data.data.x_test, verbose=0)
    np.testing.assert_allclose(recorded.predictions["probs"], expected, atol=2e-3)
    assert artifacts.read_embedding(recorded) is not None  # its map, like a zoo run


def test_an_interrupted_recording_writes_nothing_and_names_are_not_reused(tmp_path, image_folder):
    import keras

    data = tracking.load_data(image_folder, val_size=50)
    model = _small_model(keras)
    with pytest.raises(RuntimeError, match="kernel died"):
        with tracking.Run("broken", data, root=tmp_path) as run:
            model.fit(data.x_train, data.y_train, epochs=1, callbacks=[run.callback], verbose=0)
            raise RuntimeError("kernel died")
    assert artifacts.list_runs(tmp_path) == [] and not (tmp_path / "work" / "broken").exists()
    with pytest.raises(ConfigError, match="callbacks=\\[run.callback\\]"):
        with tracking.Run("no-epochs", data, root=tmp_path) as run:
            run.finish(model)
    with tracking.Run("once", data, root=tmp_path) as run:
        model.fit(data.x_train, data.y_train, epochs=1, callbacks=[run.callback], verbose=0)
        run.finish(model, export=False)
    with pytest.raises(artifacts.RunExistsError, match="record under another name"):
        with tracking.Run("once", data, root=tmp_path):
            pass


LAYERS = """
import keras


@keras.saving.register_keras_serializable(package="mine")
class Doubled(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x
"""

RECORD = """
import sys
import importlib.util
spec = importlib.util.spec_from_file_location("my_layers", sys.argv[1])
my_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(my_layers)
import keras
from cifar_core.training import tracking
data = tracking.load_data(sys.argv[2], val_size=50)
inputs = keras.Input((32, 32, 3))
x = my_layers.Doubled()(keras.layers.Rescaling(1 / 510)(inputs))
x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))
model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
model.compile("adam", "sparse_categorical_crossentropy")
with tracking.Run("custom", data, root=sys.argv[3]) as run:
    model.fit(data.x_train, data.y_train, validation_data=data.validation, epochs=1, callbacks=[run.callback])
    run.finish(model, code=sys.argv[1], export=False)  # served by Keras: the code is needed
"""


@pytest.fixture(scope="module")
def custom_root(tmp_path_factory, image_folder):
    """A recorded run whose model has a custom layer, made in another process (so this one
    has never imported the layer's code)."""
    folder = tmp_path_factory.mktemp("custom")
    (folder / "my_layers.py").write_text(LAYERS)
    root = folder / "artifacts"
    argv = [sys.executable, "-c", RECORD, str(folder / "my_layers.py"), str(image_folder), str(root)]
    subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    return root


def _cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "cifar_core", *argv], capture_output=True, text=True, cwd=ROOT
    )


def test_a_custom_layer_loads_only_with_trust_code(custom_root, image_folder):
    run = artifacts.read_run(custom_root, "custom")
    assert [f.name for f in run.code_files] == ["my_layers.py"]
    assert run.manifest["source"]["custom_layers"] == ["Doubled"]
    image = str(next((image_folder / "test" / "cat").iterdir()))
    refused = _cli("predict", "--run", "custom", image, "--artifacts-dir", str(custom_root))
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "custom layers" in line and "my_layers.py" in line and "--trust-code" in line
    trusted = _cli("predict", "--run", "custom", image, "--trust-code", "--artifacts-dir", str(custom_root))
    assert trusted.returncode == 0, trusted.stderr
    assert "cat" in trusted.stdout or "%" in trusted.stdout


def test_the_dashboard_loads_a_custom_layer_only_when_the_switch_is_on(monkeypatch, custom_root):
    at = open_page(monkeypatch, custom_root, "classify")
    assert not at.exception
    assert at.toggle(key="trust_code").value is False
    at = open_page(monkeypatch, custom_root, "curves")  # needs no model: drawn either way
    assert not at.exception and at.get("plotly_chart")
    import streamlit as st
    from common import serving

    run = artifacts.read_run(custom_root, "custom")
    with pytest.raises(Exception, match="custom layers"):
        serving.predictor_for(run)  # no trust: the pool refuses with the one line
    monkeypatch.setitem(st.session_state, serving.TRUST_KEY, True)
    assert serving.predictor_for(run) is not None


@pytest.fixture(scope="module")
def own_root(tmp_path_factory, dash_root, image_folder):
    """The dashboard's runs plus one from a builder file and one recorded fit."""
    import shutil

    import keras

    from cifar_core.cli import main

    root = tmp_path_factory.mktemp("own")
    shutil.copytree(dash_root / "runs", root / "runs")
    argv = ["train", "--model", f"{ROOT / 'examples' / 'my_nets.py'}:small_cnn", "--epochs", "1"]
    argv += ["--set", "model_args.width=8", "--val-size", "50", "--precision", "float32"]
    assert main([*argv, "--data-dir", str(image_folder), "--artifacts-dir", str(root)]) == 0
    data = tracking.load_data(image_folder, val_size=50)
    model = _small_model(keras)
    with tracking.Run("notebook-cnn", data, root=root) as run:
        model.fit(
            data.x_train, data.y_train, validation_data=data.validation, epochs=1, callbacks=[run.callback]
        )
        run.finish(model, export=False)
    return root


@pytest.mark.parametrize(
    "page", ["leaderboard", "curves", "per_class", "mistakes", "classify", "compare", "map"]
)
def test_your_own_runs_show_on_every_page_like_a_zoo_run(monkeypatch, own_root, page):
    at = open_page(monkeypatch, own_root, page)
    assert not at.exception, [e.value for e in at.exception]
    if page == "leaderboard":
        frame = at.dataframe[0].value
        made = dict(zip(frame["label"], frame["made_by"]))
        assert made["small_cnn (my_nets.py)"].startswith("your file my_nets.py:small_cnn (sha256 ")
        assert made["notebook-cnn"].startswith("recorded fit in ")
    if page == "curves":
        multiselect = at.multiselect(key="curves_runs")
        multiselect.set_value(
            [o for o in multiselect.options if o.startswith(("small_cnn", "notebook"))]
        ).run()
        shown = " ".join(chart.proto.spec for chart in at.get("plotly_chart"))
        assert "small_cnn (my_nets.py)" in shown and "notebook-cnn" in shown
    if page == "classify":  # both models load (standard layers only: no code to trust)
        assert not any("cannot load" in w.value for w in at.warning), [w.value for w in at.warning]
