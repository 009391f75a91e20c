import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import fake_model as _fake_model
from conftest import run_values

from cifar_core import artifacts
from cifar_core.artifacts import ArtifactError, RunExistsError, RunLockedError


def _write(root, run_id="r1"):
    values = run_values()
    artifacts.write_run(root, run_id, artifacts.RunContents(**values, save_model=_fake_model))
    return values


def test_a_written_run_reads_back_identically(tmp_path):
    written = _write(tmp_path)
    run = artifacts.read_run(tmp_path, "r1")
    assert run.manifest == {**written["manifest"], "schema_version": artifacts.SCHEMA_VERSION, "run_id": "r1"}
    pd.testing.assert_frame_equal(run.history, written["history"])
    assert run.metrics == written["metrics"]
    assert run.per_class.to_dict("records") == written["per_class"]
    np.testing.assert_array_equal(run.confusion, written["confusion"])
    np.testing.assert_allclose(run.predictions["probs"], written["predictions"]["probs"], atol=1e-3)
    np.testing.assert_array_equal(run.predictions["y_true"], written["predictions"]["y_true"])
    assert run.predictions["test_ids"].tolist() == ["t0", "t1", "t2", "t3"]
    assert run.thumbnails["index"].tolist() == [2]
    assert artifacts.list_runs(tmp_path) == ["r1"]


def test_incomplete_runs_are_never_listed_and_ids_are_not_reused(tmp_path):
    _write(tmp_path)
    (tmp_path / "runs" / ".incomplete-r2-1234").mkdir()
    assert artifacts.list_runs(tmp_path) == ["r1"]
    with pytest.raises(RunExistsError):
        _write(tmp_path)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [".incomplete-r2-1234", "r1"]


def test_a_failing_writer_leaves_no_trace(tmp_path):
    def broken_model(path):
        raise OSError("disk full")

    values = _write(tmp_path, "ok")
    with pytest.raises(OSError, match="disk full"):
        artifacts.write_run(tmp_path, "broken", artifacts.RunContents(**values, save_model=broken_model))
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ok"]


def _corrupt(path, how):
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    elif how == "garbage":
        path.write_bytes(b"\x00\xffnot what it should be{")


@pytest.mark.parametrize("how", ["delete", "truncate", "garbage"])
@pytest.mark.parametrize("name", artifacts.FILES)
def test_each_damaged_file_is_named_in_the_error(tmp_path, name, how):
    _write(tmp_path)
    target = tmp_path / "runs" / "r1" / name
    _corrupt(target, how)
    with pytest.raises(ArtifactError) as caught:
        artifacts.read_run(tmp_path, "r1")
    assert str(target) in str(caught.value)


@pytest.mark.parametrize(
    "name, mutate, message",
    [
        (artifacts.MANIFEST, lambda d: d.update(schema_version=99), "schema_version"),
        (artifacts.MANIFEST, lambda d: d.update(schema_version=1), "cifar_core migrate"),
        (artifacts.MANIFEST, lambda d: d["data"].pop("kind"), "data.kind"),
        (artifacts.METRICS, lambda d: d.pop("stored_model"), "stored_model"),
        (artifacts.METRICS, lambda d: d["test"].update(ece="low"), "test.ece"),
        (artifacts.MANIFEST, lambda d: d.pop("class_names"), "class_names"),
        (artifacts.METRICS, lambda d: d["test"].update(accuracy=1.7), "test.accuracy"),
    ],
)
def test_wrong_json_content_is_refused(tmp_path, name, mutate, message):
    _write(tmp_path)
    path = tmp_path / "runs" / "r1" / name
    content = json.loads(path.read_text())
    mutate(content)
    path.write_text(json.dumps(content))
    with pytest.raises(ArtifactError, match=message):
        artifacts.read_run(tmp_path, "r1")


def test_wrong_array_shapes_are_refused(tmp_path):
    _write(tmp_path)
    path = tmp_path / "runs" / "r1" / artifacts.PREDICTIONS
    np.savez(
        path.with_suffix(".tmp.npz"),
        probs=np.zeros((4, 5)),
        y_pred=np.zeros(4),
        y_true=np.zeros(4),
        test_ids=np.array(["a"] * 4),
    )
    path.with_suffix(".tmp.npz").replace(path)
    with pytest.raises(ArtifactError, match=r"probs must be \(N, 3\)"):
        artifacts.read_run(tmp_path, "r1")


def _rewrite_predictions(tmp_path, **arrays):
    path = tmp_path / "runs" / "r1" / artifacts.PREDICTIONS
    with np.load(path) as stored:
        content = {**{k: stored[k] for k in stored.files}, **arrays}
    content = {k: v for k, v in content.items() if v is not None}
    np.savez(path.with_suffix(".tmp.npz"), **content)
    path.with_suffix(".tmp.npz").replace(path)


def test_predicted_labels_are_the_argmax_before_float16_rounding(tmp_path):
    # 0.50004 and 0.49996 both round to 0.5 in float16: argmax of the stored probabilities
    # would say class 0 where the model said class 1.
    values = _write(tmp_path, "tie")
    probs = np.array([[0.7, 0.2, 0.1], [0.49996, 0.50004, 0.0], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]])
    values["predictions"] = {**values["predictions"], "y_true": np.array([0, 0, 2, 0])}
    values["predictions"]["probs"] = probs
    values["confusion"] = np.array([[2, 1, 0], [0, 0, 0], [0, 0, 1]])
    artifacts.write_run(tmp_path, "r1", artifacts.RunContents(**values, save_model=_fake_model))
    run = artifacts.read_run(tmp_path, "r1")
    assert run.predictions["probs"][1, 0] == run.predictions["probs"][1, 1]  # tied once stored
    assert run.predictions["y_pred"].tolist() == [0, 1, 2, 0]

    # version 2 has no reader for predictions without y_pred (migrate converts old runs)
    _rewrite_predictions(tmp_path, y_pred=None)
    with pytest.raises(ArtifactError, match="missing array 'y_pred'"):
        artifacts.read_run(tmp_path, "r1")

    # predicted labels that contradict the confusion matrix are a damaged run
    _rewrite_predictions(tmp_path, y_pred=np.array([0, 0, 2, 0], np.int16))
    with pytest.raises(ArtifactError, match="y_pred does not match the confusion matrix"):
        artifacts.read_run(tmp_path, "r1")


def test_one_bad_run_does_not_hide_the_others(tmp_path):
    _write(tmp_path, "good")
    _write(tmp_path, "bad")
    (tmp_path / "runs" / "bad" / artifacts.METRICS).write_text("{oops")
    good, bad = artifacts.load_runs(tmp_path)
    assert [r.run_id for r in good] == ["good"]
    assert "metrics.json" in bad["bad"]


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "..", "", ".hidden", "x" * 200, "/etc/passwd"])
def test_run_ids_that_could_escape_the_folder_are_refused(tmp_path, run_id):
    with pytest.raises(ArtifactError, match="invalid run id"):
        artifacts.read_run(tmp_path, run_id)


def test_symlinked_run_folders_pointing_outside_are_refused(tmp_path):
    outside = tmp_path / "outside"
    _write(outside, "victim")
    (tmp_path / "root" / "runs").mkdir(parents=True)
    (tmp_path / "root" / "runs" / "link").symlink_to(outside / "runs" / "victim")
    with pytest.raises(ArtifactError, match="outside"):
        artifacts.read_run(tmp_path / "root", "link")


def test_a_second_trainer_of_the_same_run_id_is_locked_out(tmp_path):
    with artifacts.training_lock(tmp_path, "r1"):
        with pytest.raises(RunLockedError, match="another process"):
            with artifacts.training_lock(tmp_path, "r1"):
                pass
    with artifacts.training_lock(tmp_path, "r1"):  # released: free again
        pass


def test_artifacts_root_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR_ARTIFACTS", str(tmp_path / "elsewhere"))
    assert artifacts.artifacts_root() == tmp_path / "elsewhere"
    assert artifacts.artifacts_root(tmp_path / "explicit") == tmp_path / "explicit"
    shutil.rmtree(tmp_path, ignore_errors=True)


def _photo_like(n, seed=0):
    """Smooth random images (JPEG's kind of content), not white noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.float32)
    return np.clip(small.repeat(4, 1).repeat(4, 2) + rng.normal(0, 4, (n, 32, 32, 3)), 0, 255).astype(
        np.uint8
    )


def test_thumbnails_are_stored_as_jpegs_and_read_back_close_to_the_pixels(tmp_path):
    values = _write(tmp_path)
    images = _photo_like(3)
    values["thumbnails"] = {"index": np.array([0, 2, 3]), "images": images}
    artifacts.write_run(tmp_path, "r2", artifacts.RunContents(**values, save_model=_fake_model))
    path = tmp_path / "runs" / "r2" / artifacts.THUMBNAILS
    with np.load(path) as stored:
        assert sorted(stored.files) == ["index", "jpeg", "offsets"]
    assert path.stat().st_size < 0.6 * images.nbytes
    run = artifacts.read_run(tmp_path, "r2")
    assert run.thumbnails["index"].tolist() == [0, 2, 3]
    assert run.thumbnails["images"].shape == images.shape and run.thumbnails["images"].dtype == np.uint8
    assert np.abs(run.thumbnails["images"].astype(int) - images).mean() < 3


@pytest.mark.parametrize(
    "jpeg, offsets, message",
    [
        (b"\xff\xd8\xff\xe0garbage-not-a-jpeg", [0, 22], "corrupt thumbnail"),
        (b"abc", [0, 5], "offsets do not match"),
        (b"abc", [0, 2, 1, 3], "offsets do not match"),
    ],
)
def test_damaged_jpeg_thumbnails_are_named_in_the_error(tmp_path, jpeg, offsets, message):
    _write(tmp_path)
    path = tmp_path / "runs" / "r1" / artifacts.THUMBNAILS
    np.savez(
        path.with_suffix(".tmp.npz"),
        index=np.zeros(len(offsets) - 1, np.int32),
        jpeg=np.frombuffer(jpeg, np.uint8),
        offsets=np.array(offsets),
    )
    path.with_suffix(".tmp.npz").replace(path)
    with pytest.raises(ArtifactError, match=message) as caught:
        artifacts.read_run(tmp_path, "r1")
    assert str(path) in str(caught.value)


def test_runs_of_one_model_get_distinct_labels_and_a_ladder_rung_does_not_rename_a_zoo_run(tmp_path):
    _write(tmp_path, "m-first")
    _write(tmp_path, "m-second")
    values = run_values()
    values["manifest"] = {**values["manifest"], "model": "solo"}
    artifacts.write_run(tmp_path, "solo-1", artifacts.RunContents(**values, save_model=_fake_model))
    values["manifest"] = {**values["manifest"], "ladder": {"ladder": "l", "rung": "r"}}
    artifacts.write_run(tmp_path, "solo-rung", artifacts.RunContents(**values, save_model=_fake_model))
    runs, bad = artifacts.load_runs(tmp_path)
    labels = {run.run_id: run.label for run in runs}
    assert not bad
    assert labels == {
        "m-first": "m [m-first]",
        "m-second": "m [m-second]",
        "solo-1": "solo",
        "solo-rung": "solo",
    }
    assert artifacts.read_run(tmp_path, "m-first").label == "m"  # alone, a run is its model
