"""Seed groups (cifar_core.analysis.seeds): which runs group, and the statistics against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import fake_model, run_values
from scipy import stats

from cifar_core import artifacts
from cifar_core.analysis import seeds


def write(root, run_id, seed=0, **config):
    values = run_values()
    values["manifest"] = {**values["manifest"], "seed": seed}
    values["manifest"]["config"] = {**values["manifest"]["config"], "seed": seed, **config}
    artifacts.write_run(root, run_id, artifacts.RunContents(**values, save_model=fake_model))


def test_runs_that_differ_only_in_their_seed_form_a_group(tmp_path):
    write(tmp_path, "m-s0", seed=0)
    write(tmp_path, "m-s2", seed=2)
    write(tmp_path, "m-s1", seed=1)
    write(tmp_path, "m-lr", seed=1, learning_rate=0.5)  # another setting: its own group
    write(tmp_path, "m-ep", seed=0, epochs=3)
    runs, bad = artifacts.load_runs(tmp_path)
    assert not bad
    groups = {g.members[0].run_id: g for g in seeds.group_runs(runs)}
    assert sorted(len(g.members) for g in groups.values()) == [1, 1, 3]
    trio = groups["m-s0"]
    assert trio.seeds == [0, 1, 2] and [r.run_id for r in trio.members] == ["m-s0", "m-s1", "m-s2"]


def test_other_data_or_another_model_never_group(tmp_path):
    write(tmp_path, "a", seed=0)
    values = run_values()
    values["manifest"] = {
        **values["manifest"],
        "seed": 1,
        "data": {**values["manifest"]["data"], "checksum": "x"},
    }
    artifacts.write_run(tmp_path, "b", artifacts.RunContents(**values, save_model=fake_model))
    values = run_values()
    values["manifest"] = {**values["manifest"], "seed": 1, "model": "other"}
    values["manifest"]["config"] = {**values["manifest"]["config"], "model": "other"}
    artifacts.write_run(tmp_path, "c", artifacts.RunContents(**values, save_model=fake_model))
    runs, _ = artifacts.load_runs(tmp_path)
    assert [g.n for g in seeds.group_runs(runs)] == [1, 1, 1]


def fake_group(accuracies, n_images=4000, seed=0, shared=None):
    """A Group of runs whose per-image correctness has these accuracies."""
    rng = np.random.default_rng(seed)
    members = []
    for k, accuracy in enumerate(accuracies):
        correct = rng.random(n_images) < accuracy if shared is None else shared[k]
        y_true = np.zeros(n_images, dtype=int)
        run = type("R", (), {})()
        run.run_id, run.label = f"r{seed}-{k}", f"model{seed}"
        run.base_label = run.label
        run.manifest = {"seed": k, "config": {}}
        run.predictions = {"y_true": y_true, "y_pred": np.where(correct, 0, 1)}
        run.metrics = {"test": {"accuracy": float(correct.mean())}}
        run.has_model = k == 0  # the first seed in full, the others lean
        members.append(run)
    return seeds.Group(key=str(seed), members=members)


def test_summary_is_mean_sd_and_the_binomial_se_for_one_run():
    group = fake_group([0.80, 0.82, 0.78])
    s = seeds.summary(group)
    values = group.accuracies()
    assert s["mean"] == pytest.approx(values.mean()) and s["sd"] == pytest.approx(np.std(values, ddof=1))
    assert s["se"] == pytest.approx(stats.sem(values)) and (s["min"], s["max"]) == (
        values.min(),
        values.max(),
    )
    one = seeds.summary(fake_group([0.9], n_images=5000))
    p = one["mean"]
    assert one["sd"] is None and one["se"] == pytest.approx(math.sqrt(p * (1 - p) / 5000))
    assert "binomial" in one["se_kind"]


def test_one_seed_each_the_interval_is_scipys_paired_bootstrap_over_images():
    rng = np.random.default_rng(3)
    a = rng.random(3000) < 0.80
    b = np.where(rng.random(3000) < 0.5, a, rng.random(3000) < 0.83)  # correlated, as two models are
    ours = seeds.bootstrap_difference(a[None], b[None], n_boot=4000)
    theirs = stats.bootstrap(
        (a.astype(float), b.astype(float)),
        lambda x, y: np.mean(y) - np.mean(x),
        paired=True,
        vectorized=False,
        n_resamples=4000,
        method="percentile",
        random_state=0,
    ).confidence_interval
    assert ours["difference"] == pytest.approx(b.mean() - a.mean())
    assert ours["low"] == pytest.approx(theirs.low, abs=0.003) and ours["high"] == pytest.approx(
        theirs.high, abs=0.003
    )


def test_a_known_difference_is_found_and_a_null_one_is_not():
    worse, better = fake_group([0.80, 0.81, 0.79], seed=1), fake_group([0.85, 0.86, 0.84], seed=2)
    result = seeds.compare(worse, better, n_boot=2000)
    assert result["low"] < 0.05 < result["high"] and result["low"] > 0
    assert "a real difference at n = 3" in result["sentence"] and "ahead of model1" in result["sentence"]
    assert len(result["mcnemar"]) == 3 and all(p["p_value"] < 0.01 for p in result["mcnemar"])
    same_a, same_b = fake_group([0.80, 0.80, 0.80], seed=3), fake_group([0.80, 0.80, 0.80], seed=4)
    null = seeds.compare(same_a, same_b, n_boot=2000)
    assert null["low"] < 0 < null["high"] and "not a real difference at n = 3" in null["sentence"]


def test_seed_spread_widens_the_interval_beyond_the_images_alone():
    rng = np.random.default_rng(5)
    base = rng.random(4000) < 0.8
    # Three seeds that disagree a lot with each other (a noisy recipe) against one steady run.
    noisy = np.stack(
        [np.where(rng.random(4000) < 0.3, rng.random(4000) < acc, base) for acc in (0.7, 0.8, 0.9)]
    )
    steady = np.stack([base] * 3)
    wide = seeds.bootstrap_difference(steady, noisy, n_boot=2000)
    narrow = seeds.bootstrap_difference(steady[:1], noisy[1:2], n_boot=2000)
    assert (wide["high"] - wide["low"]) > 1.5 * (narrow["high"] - narrow["low"])


def test_train_seeds_writes_a_group_whose_extra_seeds_are_lean(tmp_path, image_folder, capsys):
    from cifar_core.cli import main

    argv = ["train", "--model", "baseline_cnn", "--epochs", "1", "--val-size", "50", "--no-export"]
    argv += ["--data-dir", str(image_folder), "--artifacts-dir", str(tmp_path)]
    assert main([*argv, "--seed", "1", "--seeds", "0,1"]) == 2  # one or the other
    assert "--seed and --seeds" in capsys.readouterr().err
    assert main([*argv, "--seeds", "0,1"]) == 0
    runs, _ = artifacts.load_runs(tmp_path)
    (group,) = seeds.group_runs(runs)
    first, extra = group.members
    assert group.seeds == [0, 1] and first.has_model and not extra.has_model
    assert seeds.group_key(first) == seeds.group_key(extra)  # the one definition of a group
    assert "group" not in first.manifest  # nothing else names it
    assert len(extra.thumbnails["index"]) <= len(first.thumbnails["index"])
    assert not (extra.path / artifacts.EMBEDDING).exists()
    capsys.readouterr()
    assert main([*argv, "--seeds", "0,1"]) == 0  # finished seeds are kept
    assert capsys.readouterr().out.count("kept") == 2


@pytest.fixture(scope="module")
def group_root(tmp_path_factory, dash_root, tiny_data):
    """The dashboard's runs plus a second seed of baseline_cnn, stored lean as --seeds does."""
    import shutil

    from cifar_core.config import TrainConfig
    from cifar_core.training.trainer import train_model

    root = tmp_path_factory.mktemp("groups")
    shutil.copytree(dash_root / "runs", root / "runs")
    first = next(r for r in artifacts.load_runs(root)[0] if r.model == "baseline_cnn")
    config = TrainConfig.from_dict({**first.manifest["config"], "seed": 1})
    train_model(config, tiny_data, root, verbose=0, lean=True)
    return root


GROUP_PAGES = ["leaderboard", "curves", "compare", "per_class", "mistakes", "agreement", "data", "run"]


@pytest.mark.parametrize("page", GROUP_PAGES)
def test_every_page_works_with_a_seed_group_and_single_runs(monkeypatch, group_root, page):
    from conftest import ROOT
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CIFAR_ARTIFACTS", str(group_root))
    at = AppTest.from_file(str(ROOT / "dashboard" / "views" / f"{page}.py"), default_timeout=180).run()
    if page == "curves":
        picker = at.multiselect(key="curves_runs")
        picker.set_value([o for o in picker.options if "baseline_cnn" in o]).run()
    if page == "compare":
        options = at.selectbox(key="cmp_a").options
        at.selectbox(key="cmp_a").set_value(next(o for o in options if "cnn_bn" in o)).run()
        at.selectbox(key="cmp_b").set_value(next(o for o in options if "baseline_cnn" in o)).run()
    assert not at.exception, [e.value for e in at.exception]
    if page == "leaderboard":
        table = at.dataframe[0].value.set_index("label")
        assert table.loc["baseline_cnn", "n"] == 2 and table.loc["cnn_bn", "n"] == 1
        assert any("2 runs, seeds 0, 1" in e.label for e in at.expander)
    if page == "curves":
        assert "Seed groups: mean and spread" in [h.value for h in at.subheader]
        at.radio(key="curves_band").set_value("± SD").run()
        assert not at.exception
    if page == "compare":
        said = " ".join(m.value for m in at.success) + " ".join(m.value for m in at.info)
        assert "baseline_cnn is" in said and "cnn_bn" in said and "n = 2 and 1 seeds" in said


def test_a_ladder_with_several_seeds_gives_each_steps_gain_an_interval(tmp_path):
    from cifar_core.ladders import get_ladder, ladder_table

    ladder = get_ladder("seed004")
    rng = np.random.default_rng(0)
    n = 400
    for index, accuracy in ((0, 0.6), (1, 0.8)):
        for seed in (0, 1, 2):
            values = run_values()
            correct = rng.random(n) < accuracy
            y_true = np.zeros(n, dtype=int)
            y_pred = np.where(correct, 0, 1)
            values["predictions"] = {
                "probs": np.eye(3)[y_pred].astype("float32"),
                "y_true": y_true,
                "test_ids": np.array([f"t{i}" for i in range(n)]),
            }
            values["metrics"]["test"] = {**values["metrics"]["test"], "accuracy": float(correct.mean())}
            values["confusion"] = np.array(
                [[int(correct.sum()), int((~correct).sum()), 0], [0, 0, 0], [0, 0, 0]]
            )
            values["manifest"] = {**values["manifest"], "seed": seed, "ladder": ladder.record(index)}
            values["manifest"]["config"] = {**values["manifest"]["config"], "seed": seed}
            artifacts.write_run(tmp_path, ladder.run_id(index, seed), artifacts.RunContents(**values))
    runs, bad = artifacts.load_runs(tmp_path)
    assert not bad and ladder.run_id(1, 2).endswith("-s2") and ladder.run_id(1, 0) == ladder.run_id(1)
    table = ladder_table(ladder, runs).set_index("rung")
    assert table.loc[1, "n"] == 3 and table.loc[2, "n"] == 3 and table.loc[1, "run_id"] == ladder.run_id(0)
    assert table.loc[2, "gain_low"] < 0.2 < table.loc[2, "gain_high"] and table.loc[2, "gain_low"] > 0
    assert table.loc[2, "test_sd"] > 0


def test_ladder_run_seeds_plans_one_ladder_per_seed(tmp_path, image_folder, capsys):
    from cifar_core.cli import main

    argv = ["ladder", "run", "seed004", "--rungs", "1-2", "--seeds", "0,1", "--dry-run"]
    assert main([*argv, "--data-dir", str(image_folder), "--artifacts-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = [line.split(": ")[0].split("] ")[1] for line in lines]
    assert ids == [
        "seed004-01-base",
        "seed004-02-more-layers",
        "seed004-01-base-s1",
        "seed004-02-more-layers-s1",
    ]


def test_the_pickers_offer_one_run_per_recipe_the_one_that_keeps_its_model(group_root):
    from common import loading

    runs, _ = artifacts.load_runs(group_root)
    offered = loading.one_per_recipe(runs)
    baselines = [r for r in offered if r.model == "baseline_cnn"]
    assert len([r for r in runs if r.model == "baseline_cnn"]) == 2 and len(baselines) == 1
    assert baselines[0].has_model  # the lean second seed is in the group, not in the picker
    assert len(offered) == len(seeds.group_runs(runs))
