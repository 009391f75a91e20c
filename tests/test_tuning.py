"""Hyper-parameter studies (cifar_core.tuning) on a tiny synthetic image folder."""

import json

import optuna
import pytest

from cifar_core import artifacts
from cifar_core.artifacts import studies
from cifar_core.cli import main
from cifar_core.config import TrainConfig
from cifar_core.errors import ConfigError
from cifar_core.tuning import load_space, open_study, read_study, settings, space_for, suggest, trials_frame


def test_spaces_are_declared_per_model_checked_and_changed_by_a_file(tmp_path):
    space = space_for("cnn_bn")  # declared next to its preset
    assert {"learning_rate", "batch_size", "model_args.dropout", "augment.translate"} <= set(space)
    assert "model_args.dropout" in space_for("cnn_4block")  # default space + the builder's dropout
    assert "model_args.dropout" not in space_for("resnet20")
    changes = tmp_path / "space.json"
    changes.write_text(json.dumps({"weight_decay": None, "batch_size": {"choices": [32]}}))
    changed = load_space("cnn_bn", changes)
    assert "weight_decay" not in changed and changed["batch_size"] == {"choices": [32]}
    for bad in (
        {"no_such_field": {"range": [0, 1]}},
        {"learning_rate": {"log": [0, 1]}},
        {"learning_rate": {"range": [1, 0]}},
        {"learning_rate": {"uniform": [0, 1]}},
    ):
        changes.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match="search space|--set"):
            load_space("cnn_bn", changes)
    changes.write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable JSON"):
        load_space("cnn_bn", changes)


def test_a_trials_values_become_a_config_lists_included():
    space = {
        "learning_rate": {"log": [1e-4, 1e-2]},
        "model_args.widths": {"choices": [[16, 32, 64], [32, 64, 128]]},
    }
    trial = optuna.trial.FixedTrial({"learning_rate": 3e-3, "model_args.widths": "[16, 32, 64]"})
    values = suggest(trial, space)
    assert values == {"learning_rate": 3e-3, "model_args.widths": [16, 32, 64]}
    config = TrainConfig.from_preset("baseline_cnn", settings(values))
    assert config.learning_rate == 3e-3 and config.model_args["widths"] == [16, 32, 64]


def _tune(folder, root, *extra):
    space = root.parent / "space.json"
    space.write_text(json.dumps({"learning_rate": {"log": [1e-3, 5e-3]}, "weight_decay": None}))
    argv = ["tune", "--model", "cnn_bn", "--epochs", "2", "--val-size", "50", "--space", str(space)]
    return main([*argv, "--data-dir", str(folder), "--artifacts-dir", str(root), *extra])


def test_a_study_keeps_every_trial_resumes_an_interrupted_one_and_retrains_its_best(
    image_folder, tmp_path, capsys
):
    root = tmp_path / "artifacts"
    assert _tune(image_folder, root, "--trials", "2") == 0
    name = "cnn_bn-tune"
    info = studies.read_study_info(root, name)
    assert info["model"] == "cnn_bn" and info["epochs"] == 2 and "weight_decay" not in info["space"]
    assert info["data"]["checksum"] and info["sampler"] == "TPE"

    # A process killed in the middle of a trial leaves it running: the next start fails it
    # and trains its values again.
    study = open_study(root, name)
    killed = study.ask()
    values = suggest(killed, info["space"])
    killed.set_user_attr("pid", 2**22 + 12345)  # no such process
    killed.set_user_attr("host", __import__("socket").gethostname())
    assert _tune(image_folder, root, "--trials", "3") == 0
    frame = trials_frame(open_study(root, name))
    assert list(frame["state"]) == ["complete", "complete", "fail", "complete"]
    retry = frame.iloc[3]
    assert retry["resumes"] == killed.number
    assert retry["param:learning_rate"] == pytest.approx(values["learning_rate"])
    assert all(len(c) == 2 for c in frame.loc[frame["state"] == "complete", "val_curve"])
    assert not any((root / "work" / "studies" / name).iterdir())  # finished trials leave no work

    # The same name with another search is refused; the stored study is untouched.
    assert _tune(image_folder, root, "--trials", "3", "--epochs", "3") == 2
    assert "searched another epochs" in capsys.readouterr().err

    found = read_study(root, name)
    assert found["best"]["val_accuracy"] == frame["val_accuracy"].max()
    assert set(found["importances"]) == set(info["space"])
    assert main(["tune", "--show", name, "--artifacts-dir", str(root)]) == 0
    assert "importance" in capsys.readouterr().out

    argv = ["tune", "--retrain", name, "--epochs", "1", "--data-dir", str(image_folder)]
    assert main([*argv, "--artifacts-dir", str(root)]) == 0
    (run_id,) = artifacts.list_runs(root)
    run = artifacts.read_run(root, run_id)
    assert run.manifest["study"]["study"] == name and run.manifest["study"]["trial"] == found["best"]["trial"]
    assert run.manifest["config"]["learning_rate"] == pytest.approx(found["best"]["params"]["learning_rate"])
    assert run.manifest["config"]["train_limit"] is None  # retrained on all of train


def test_trials_never_read_the_test_split(image_folder, tmp_path):
    from cifar_core.data import load_cifar10
    from cifar_core.tuning.study import describe, prepare, run_trials

    data = load_cifar10(image_folder)
    space = {"learning_rate": {"log": [1e-3, 5e-3]}}
    info = describe("cnn_bn", space, 1, data, tmp_path, val_size=50)
    info = prepare(tmp_path, "t", info)
    data.x_test = data.y_test = None  # any look at the test split would fail
    run_trials(tmp_path, "t", info, data, trials=1)
    assert trials_frame(open_study(tmp_path, "t"))["state"].tolist() == ["complete"]
