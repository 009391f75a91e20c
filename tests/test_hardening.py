"""Hardening: damaged or hostile artifacts seen through the CLI and the dashboard, settings."""

import shutil

import keras
import numpy as np
import pytest
import tomllib
from conftest import ROOT, fake_model, run_values
from test_dashboard import PAGES, open_page

from cifar_core import artifacts
from cifar_core.cli import main


def _damage(path, how):
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])


@pytest.mark.parametrize("name", artifacts.FILES)
def test_each_damaged_file_is_named_by_the_cli_and_listed_by_the_dashboard(
    monkeypatch, tmp_path, dash_root, capsys, name
):
    root = tmp_path / "copy"
    shutil.copytree(dash_root, root)
    victim = sorted(artifacts.list_runs(root))[0]
    target = root / "runs" / victim / name
    _damage(target, "truncate" if name.endswith((".json", ".npz", ".keras")) else "delete")

    assert main(["predict", "--run", victim, str(ROOT / "README.md"), "--artifacts-dir", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(target) in err and len(err.splitlines()) == 1

    at = open_page(monkeypatch, root, "leaderboard")
    assert not at.exception
    assert victim in " ".join(m.value for m in at.markdown) and name in " ".join(m.value for m in at.markdown)
    assert victim not in set(at.dataframe[0].value["run"]) and len(at.dataframe[0].value) == 2


def test_a_model_with_code_in_the_artifacts_is_refused_and_the_rest_still_predict(
    monkeypatch, tmp_path, dash_root
):
    root = tmp_path / "copy"
    shutil.copytree(dash_root, root)
    victim = sorted(artifacts.list_runs(root))[0]
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda t: keras.ops.ones_like(t)[:, 0, 0, :1] * 0 + 1)(inputs)
    keras.Model(inputs, outputs).save(root / "runs" / victim / artifacts.MODEL)
    at = open_page(monkeypatch, root, "classify")
    x = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(x).save(buffer, "PNG")
    at.file_uploader(key="cls_upload").set_value([("x.png", buffer.getvalue(), "image/png")]).run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert victim in warnings and "safe mode" in warnings
    assert len(at.dataframe[0].value) == 2  # the two other models still answered


def test_test_ids_cannot_make_the_dashboard_read_outside_the_data_folder(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    (data / "test" / "cat").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    Image.new("RGB", (32, 32), "red").save(secret)
    Image.new("RGB", (32, 32), "blue").save(data / "test" / "cat" / "0.png")
    values = run_values()
    values["manifest"]["data"].update(kind="image_folder", root="data")
    values["predictions"]["test_ids"] = np.array(["test/cat/0.png", "../secret.png", "/etc/passwd", "x"])
    values["thumbnails"] = {"index": np.array([1]), "images": np.zeros((1, 32, 32, 3), np.uint8)}
    artifacts.write_run(tmp_path / "art", "r", artifacts.RunContents(**values, save_model=fake_model))
    run = artifacts.read_run(tmp_path / "art", "r")
    inside, outside, absolute = artifacts.test_images(run, np.array([0, 1, 2]))
    assert inside[0, 0, 2] > 200  # the blue image inside the folder
    assert outside.max() == 0  # the stored thumbnail, not ../secret.png (red)
    assert absolute is None


def test_streamlit_settings_limit_uploads_and_leak_nothing():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 10
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["enableStaticServing"] is False
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorDetails"] == "none"
    from cifar_core.data.images import MAX_UPLOAD_BYTES

    assert MAX_UPLOAD_BYTES == config["server"]["maxUploadSize"] * 1024 * 1024


@pytest.mark.parametrize("page", PAGES)
def test_pages_ignore_hostile_query_parameters(monkeypatch, dash_root, page):
    at = open_page(monkeypatch, dash_root, page)
    at.query_params["run"] = "../../etc/passwd"
    at.query_params["path"] = "/etc/shadow"
    at.run()
    assert not at.exception
