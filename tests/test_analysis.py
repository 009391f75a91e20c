"""A run's map of the test set and its data facts: computed, stored, re-made, read."""

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import write_image_folder

from cifar_core import artifacts
from cifar_core.analysis import crossrun, embeddings
from cifar_core.cli import main
from cifar_core.data import datafacts
from cifar_core.errors import ArtifactError


def test_a_trained_run_has_its_map_and_its_data_facts(trained_run, tiny_data):
    root, run_id, config = trained_run
    run = artifacts.read_run(root, run_id)
    arrays = artifacts.read_embedding(run)
    assert arrays["xy"].shape == (len(tiny_data.y_test), 2) and arrays["xy"].dtype == np.float16
    assert arrays["pca"].shape[0] == len(tiny_data.y_test) and arrays["pca"].shape[1] <= 50
    assert arrays["components"].shape == (arrays["pca"].shape[1], 128)  # baseline_cnn's Dense 128
    facts = artifacts.read_data_facts(run)
    counts = {k: sum(v) for k, v in facts["class_counts"].items()}
    assert counts == {"train": run.manifest["data"]["n_train"], "val": 50, "test": len(tiny_data.y_test)}
    assert facts["class_counts"]["test"] == np.bincount(tiny_data.y_test, minlength=10).tolist()
    x = tiny_data.x_train.reshape(-1, 3).astype(np.float64)
    assert abs(facts["channel_mean"][0] - x[:, 0].mean()) < 10  # the train split's, not all of train
    assert facts["files"] is None and facts["image_shape"] == [32, 32, 3]  # arrays, not files


def test_channel_statistics_hold_on_a_train_split_of_cifar_size():
    x = np.empty((48_000, 32, 32, 3), np.uint8)  # 49 million pixels, as many as CIFAR-10's train split
    x[...] = (250, 10, 100)
    x[::2, 0, 0] = (0, 0, 0)
    y = np.zeros(len(x), np.int64)
    data = SimpleNamespace(
        class_names=["a"], y_test=y[:10], x_train=x, source="s", checksum="c", kind="arrays", root=None
    )
    facts = datafacts.describe(data, SimpleNamespace(y_train=y, y_val=y[:10], x_train=x))
    expected = np.array([250.0, 10.0, 100.0]) * (1 - 0.5 / 1024)
    np.testing.assert_allclose(facts["channel_mean"], expected, atol=1e-3)
    var = (np.array([250.0, 10.0, 100.0]) ** 2) * (0.5 / 1024) * (1 - 0.5 / 1024)
    np.testing.assert_allclose(facts["channel_std"], np.sqrt(var), atol=1e-3)


def test_the_map_keeps_what_the_features_separate_and_neighbours_find_their_own():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 64)) * 6
    labels = np.repeat(np.arange(3), 60)
    feats = (centres[labels] + rng.normal(0, 1, (180, 64))).astype(np.float32)
    arrays = embeddings.reduce(feats, seed=0)
    xy = arrays["xy"].astype(np.float32)
    assert np.abs(xy).max() <= 1.0 + 1e-3
    # In 2-D, each point's nearest other point has its label (3 far-apart clusters).
    dist = ((xy[:, None] - xy[None]) ** 2).sum(-1) + np.eye(len(xy)) * 1e9
    assert (labels[dist.argmin(1)] == labels).mean() > 0.98
    order, similarity = embeddings.neighbours(arrays, arrays["pca"][5], k=10, exclude=5)
    assert 5 not in order and (labels[order] == labels[5]).all()
    assert np.all(np.diff(similarity) <= 1e-6)  # nearest first
    # A new image's features land beside its own cluster through the stored PCA.
    query = embeddings.project(arrays, centres[2][None].astype(np.float32))[0]
    order, _ = embeddings.neighbours(arrays, query, k=10)
    assert embeddings.neighbour_vote(labels, order, ["a", "b", "c"])[0] == ("c", 10)
    with pytest.raises(embeddings.EmbeddingError, match="dimensions"):
        embeddings.project(arrays, np.zeros((1, 3), np.float32))
    # An untrained net's features can be huge: the stored float16 coordinates stay finite,
    # and projecting the same features again lands on them.
    big = embeddings.reduce(feats * 1e5, seed=0)
    assert np.isfinite(big["pca"]).all() and np.abs(big["pca"]).max() <= 1
    again = embeddings.project(big, feats[:5] * 1e5)
    np.testing.assert_allclose(again, big["pca"][:5].astype(np.float32), atol=2e-3)


def test_embed_remakes_a_map_only_from_the_runs_own_data(tmp_path, folder_run, image_folder, capsys):
    root = tmp_path / "art"
    shutil.copytree(folder_run[0], root)
    run_id = folder_run[1]
    before = artifacts.read_embedding(artifacts.read_run(root, run_id))
    folder = artifacts.run_dir(root, run_id)
    (folder / artifacts.EMBEDDING).unlink()
    (folder / artifacts.DATA_FACTS).unlink()
    assert artifacts.runs_without_map(root) == [run_id]
    other = write_image_folder(tmp_path / "other", n_train=100, n_test=50)
    argv = ["--artifacts-dir", str(root)]
    assert main(["embed", run_id, "--data-dir", str(other), *argv]) == 2
    assert "not the run's data" in capsys.readouterr().err
    assert not (folder / artifacts.EMBEDDING).exists()  # nothing written
    assert main(["embed", *argv]) == 2 and "name the runs" in capsys.readouterr().err
    # Copied elsewhere, the run's recorded (relative) data folder is not found: say so.
    assert main(["embed", "--all", *argv]) == 2
    assert "not on this machine: pass --data-dir" in capsys.readouterr().err
    assert main(["embed", "--all", "--data-dir", str(image_folder), *argv]) == 0
    assert f"{run_id}: map of the test set" in capsys.readouterr().out
    run = artifacts.read_run(root, run_id)
    again = artifacts.read_embedding(run)
    # Same model (the stored one has float16 weights, training's float32), same features.
    scale = np.abs(before["pca"].astype(np.float32)).max()
    np.testing.assert_allclose(again["pca"].astype(np.float32), before["pca"], atol=0.02 * scale)
    facts = artifacts.read_data_facts(run)
    assert facts["files"]["train"]["files"] == 200 and facts["files"]["train"]["extensions"] == {".png": 200}
    assert facts["files"]["test"]["sizes"] == {"32x32": 50}
    # --facts-only: the facts again, the map untouched.
    (folder / artifacts.DATA_FACTS).unlink()
    stamp = (folder / artifacts.EMBEDDING).stat().st_mtime_ns
    assert main(["embed", "--all", "--facts-only", "--data-dir", str(image_folder), *argv]) == 0
    assert f"{run_id}: data facts in" in capsys.readouterr().out
    assert (
        artifacts.read_data_facts(run) == facts and (folder / artifacts.EMBEDDING).stat().st_mtime_ns == stamp
    )


def test_a_corrupt_map_or_facts_file_is_named_not_used(tmp_path, trained_run):
    root = tmp_path / "art"
    shutil.copytree(trained_run[0], root)
    run = artifacts.read_run(root, trained_run[1])
    (run.path / artifacts.EMBEDDING).write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ArtifactError, match="embedding.npz"):
        artifacts.read_embedding(run)
    arrays = dict(np.load(trained_run[0] / "runs" / trained_run[1] / artifacts.EMBEDDING))
    arrays["xy"] = arrays["xy"][:-1]
    with pytest.raises(ArtifactError, match="one row per point"):
        artifacts.write_embedding(root, run.run_id, arrays)
    (run.path / artifacts.DATA_FACTS).write_text('{"source": 1}')
    with pytest.raises(ArtifactError, match="data_facts.json"):
        artifacts.read_data_facts(run)
    assert artifacts.read_run(root, run.run_id).run_id == run.run_id  # the run itself still reads


def fake_runs(n_runs: int = 3, n: int = 400, k: int = 4, seed: int = 0, flipped=(7, 42, 99)):
    """Runs that are right on most images and confidently disagree with a few wrong labels."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    labels = truth.copy()
    for i in flipped:
        labels[i] = (truth[i] + 1) % k
    runs = []
    for r in range(n_runs):
        probs = rng.dirichlet(np.ones(k) * 0.3, n) * 0.3
        probs[np.arange(n), truth] += 0.7  # confident in the true class
        others = np.setdiff1d(np.arange(n), flipped)
        wrong = rng.choice(others, 40, replace=False)  # and honestly unsure on some others
        probs[wrong] = rng.dirichlet(np.ones(k), 40)
        probs = probs / probs.sum(1, keepdims=True)
        runs.append(
            SimpleNamespace(
                run_id=f"r{r}",
                model=f"m{r}",
                class_names=[f"c{c}" for c in range(k)],
                predictions={"probs": probs.astype(np.float32), "y_true": labels, "y_pred": probs.argmax(1)},
            )
        )
    return runs, flipped


@pytest.mark.parametrize("method", ["cleanlab", "unanimous"])
def test_label_issues_surface_the_flipped_labels_first(method):
    runs, flipped = fake_runs()
    issues = crossrun.label_issues(runs, method=method)
    top = set(issues["index"].head(len(flipped)))
    assert top == set(flipped)
    row = issues.set_index("index").loc[flipped[0]]
    assert row["every_model"] and row["runs_disagreeing"] == 3 and row["p_label"] < row["p_models"]
    assert len(issues) < 60  # a ranking of suspects, not of every uncertain image


def test_label_issues_start_no_worker_process(monkeypatch):
    # The dashboard calls this inside a threaded server with TensorFlow loaded, where a
    # fork can deadlock (cleanlab forks a Pool per core unless told n_jobs=1).
    import multiprocessing

    import cleanlab.filter  # noqa: F401  (imported before Pool is replaced)

    def no_pool(*args, **kwargs):
        raise AssertionError("label_issues started a multiprocessing.Pool")

    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    runs, flipped = fake_runs()
    issues = crossrun.label_issues(runs)
    assert set(flipped) <= set(issues["index"])


def test_accuracy_without_marked_images_and_mistakes_per_class():
    runs, flipped = fake_runs()
    table = crossrun.accuracy_without(runs, flipped)
    right = runs[0].predictions["y_pred"] == runs[0].predictions["y_true"]
    keep = np.ones(len(right), bool)
    keep[list(flipped)] = False
    assert table.loc[0, "accuracy"] == pytest.approx(right.mean())
    assert table.loc[0, "without_marked"] == pytest.approx(right[keep].mean())
    assert table.loc[0, "without_marked"] > table.loc[0, "accuracy"]  # they were all "wrong"
    assert (table["marked_wrong_by_model"] == 3).all()
    wrong = crossrun.wrong_per_class(runs)
    assert wrong.loc["r0"].sum() == (~right).sum() and list(wrong.columns) == runs[0].class_names
    picks = datafacts.samples_per_class(runs[0].predictions["y_true"], np.arange(0, 400, 2), 4, 5)
    assert [len(p) for p in picks] == [5] * 4
    assert all(
        (runs[0].predictions["y_true"][p] == c).all() and (p % 2 == 0).all() for c, p in enumerate(picks)
    )
