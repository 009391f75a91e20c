"""Named recipes: a model's plain name is its best measured recipe, the others have a name,
and a run records which recipe it is and what it changed."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from cifar_core import artifacts, recipes
from cifar_core.cli import main
from cifar_core.config import TrainConfig
from cifar_core.errors import UnknownModelError
from cifar_core.models.fast import AIRBENCH94_RECIPE, CROP_RECIPE, MUON_RECIPE


def test_a_plain_name_is_the_best_recipe_and_the_others_resolve_by_name():
    assert recipes.names("fast") == ["fast", "fast:muon8", "fast:airbench94", "fast:robust"]
    best = TrainConfig.from_preset("fast")
    assert best.epochs == 10 and best.augment.small_crop == 24 and best.val_size == 0
    assert TrainConfig.from_preset("fast:muon8") == TrainConfig(model="fast", **MUON_RECIPE)
    assert TrainConfig.from_preset("fast:airbench94") == TrainConfig(model="fast", **AIRBENCH94_RECIPE)
    assert TrainConfig.from_preset("fast") == TrainConfig(model="fast", **CROP_RECIPE)
    assert TrainConfig.from_preset("cnn_bn:tuned").batch_size == 64
    for name in ("fast", "fast:muon8", "fast:airbench94", "cnn_bn:tuned", "resnet20"):
        assert recipes.identify(TrainConfig.from_preset(name)) == recipes.Recipe(name)


def test_an_unknown_recipe_is_refused_in_one_line_naming_the_models_recipes(capsys, tmp_path):
    expected = "fast has no recipe 'nope': its recipes are fast, fast:muon8"
    with pytest.raises(UnknownModelError, match=expected):
        TrainConfig.from_preset("fast:nope")
    assert main(["train", "--model", "fast:nope", "--artifacts-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fast:airbench94" in err[0]
    assert not (tmp_path / "runs").exists()  # nothing written


def test_a_changed_recipe_is_labelled_with_its_difference_and_the_seed_and_precision_are_not_one():
    changed = recipes.identify(TrainConfig.from_preset("fast:muon8", ["augment.translate=1"], epochs=12))
    assert changed.name == "fast:muon8" and changed.label == "fast:muon8 + augment.translate=1, epochs=12"
    same = recipes.identify(TrainConfig.from_preset("fast", seed=4, precision="float32", xla="off"))
    assert same.label == "fast" and same.changes == {}
    assert recipes.identify(TrainConfig(model="examples/my_nets.py:small_cnn")) is None  # your file's


def test_a_trained_run_records_its_recipe_and_the_pages_say_so(trained_run):
    from cifar_core.analysis.report import made_by

    root, run_id, config = trained_run
    run = artifacts.read_run(root, run_id)
    assert run.manifest["recipe"] == recipes.identify(config).to_dict()
    assert run.manifest["recipe"]["changes"] == {"epochs": 2, "batch_size": 64, "val_size": 50}
    assert run.label == "baseline_cnn"  # the recipe; what the run changed is in "Made by"
    assert made_by(run) == "recipe baseline_cnn + batch_size=64, epochs=2, val_size=50"


def test_the_committed_runs_record_their_recipes():
    runs, _ = artifacts.load_runs(ROOT / "artifacts")
    zoo = [r for r in runs if artifacts.run_kind(r.manifest) in ("zoo", "study")]
    assert zoo and all("recipe" in r.manifest for r in zoo)
    assert {r.recipe_label for r in zoo} >= {"fast", "fast:muon8", "cnn_bn:tuned"}


def test_list_models_shows_every_recipe_with_its_figure_and_command():
    done = subprocess.run(
        [sys.executable, "-m", "cifar_core", "list-models", "--family", "scratch",
         "--artifacts-dir", str(ROOT / "artifacts")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("    ")}
    assert "python -m cifar_core train --model fast:muon8" in lines["fast:muon8"]
    assert "% " in lines["fast"] and "n = " in lines["fast"]  # the committed group's figure
    assert "no run here" in lines["fast:airbench94"]


def test_the_docs_build_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").exists()  # generated from the parser
