"""Hyper-parameter studies (cifar_core.tuning) on a tiny synthetic image folder."""

import json

import numpy as np
import optuna
import pytest
from test_dashboard import open_page

from cifar_core import artifacts
from cifar_core.analysis import report
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

    journal = studies.journal_path(root, name).read_bytes()
    found = read_study(root, name)
    assert studies.journal_path(root, name).read_bytes() == journal  # reading writes nothing
    assert found["best"]["val_accuracy"] == frame["val_accuracy"].max()
    complete = frame.loc[frame["state"] == "complete", "val_accuracy"]
    if complete.nunique() > 1:
        assert set(found["importances"]) == set(info["space"])
    else:  # tiny data: every trial scored the same, so there is no variance to explain
        assert found["importances"] == {}
    assert studies.read_importances(root, name, 3) == found["importances"]  # stored by tune: 3 complete
    assert studies.read_importances(root, name, 4) is None  # stale after another trial
    assert main(["tune", "--show", name, "--artifacts-dir", str(root)]) == 0
    assert "importance" in capsys.readouterr().out

    argv = ["tune", "--retrain", name, "--epochs", "1", "--data-dir", str(image_folder)]
    assert main([*argv, "--artifacts-dir", str(root)]) == 0
    (run_id,) = artifacts.list_runs(root)
    run = artifacts.read_run(root, run_id)
    assert run.manifest["study"]["study"] == name and run.manifest["study"]["trial"] == found["best"]["trial"]
    assert run.manifest["config"]["learning_rate"] == pytest.approx(found["best"]["params"]["learning_rate"])
    assert run.manifest["config"]["train_limit"] is None  # retrained on all of train
    assert run.label == "cnn_bn (tuned)" and "| cnn_bn (tuned) |" in report.render(root, markdown=True)


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


def _synthetic_study(root, name="cnn_bn-tune"):
    """A stored study of eight trials written straight through Optuna (no training): what
    the Tuning page reads."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    space = {
        "learning_rate": {"log": [1e-4, 1e-2]},
        "batch_size": {"choices": [64, 128]},
        "model_args.dropout": {"range": [0.1, 0.6]},
    }
    info = {
        "model": "cnn_bn",
        "space": space,
        "epochs": 3,
        "train_limit": 2000,
        "val_size": None,
        "settings": [],
        "seed": 0,
        "sampler": "TPE",
        "pruner": {"kind": "median"},
        "data": {"source": "synthetic", "checksum": "x"},
    }
    studies.write_study_info(root, name, info)
    study = open_study(root, name)
    dists = {
        "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": CategoricalDistribution([64, 128]),
        "model_args.dropout": FloatDistribution(0.1, 0.6),
    }
    rng = np.random.default_rng(0)
    for i in range(8):
        params = {
            "learning_rate": float(10 ** rng.uniform(-4, -2)),
            "batch_size": [64, 128][i % 2],
            "model_args.dropout": float(rng.uniform(0.1, 0.6)),
        }
        curve = list(np.sort(rng.uniform(0.3, 0.8, 3 if i % 4 else 2)))
        state = optuna.trial.TrialState.PRUNED if i % 4 == 0 else optuna.trial.TrialState.COMPLETE
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                state=state,
                value=None if i % 4 == 0 else max(curve),
                intermediate_values=dict(enumerate(curve)),
                user_attrs={"val_curve": curve, "time_s": 60.0, **({"baseline": "preset"} if i == 1 else {})},
            )
        )
    return name


def test_the_tuning_page_shows_every_trial_what_mattered_and_the_best(monkeypatch, dash_root, tmp_path):
    import shutil

    root = tmp_path / "artifacts"
    shutil.copytree(dash_root, root)
    name = _synthetic_study(root)
    at = open_page(monkeypatch, root, "tuning")
    assert not at.exception and not at.error
    specs = [str(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(specs) == 3 and "parcoords" in specs[0] and "best so far" in specs[2]
    assert "the preset's values (trial 1)" in specs[2]  # the baseline trial, as a line
    assert len(at.dataframe[0].value) == 8 and at.get("download_button")
    assert any(f"tune --retrain {name}" in c.value for c in at.caption)  # not retrained yet
    # A run whose manifest names the study is shown as its retrained best.
    run_id = artifacts.list_runs(root)[0]
    manifest = root / "runs" / run_id / "manifest.json"
    data = json.loads(manifest.read_text())
    data["study"] = {"study": name, "trial": 1, "val_accuracy": 0.8, "settings": []}
    manifest.write_text(json.dumps(data))
    at = open_page(monkeypatch, root, "tuning")
    assert any(run_id in s.value for s in at.success)


def test_the_tuning_page_without_studies_says_how_to_run_one(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, "tuning")
    assert not at.exception and any("python -m cifar_core tune --model" in i.value for i in at.info)


def test_stored_importances_read_back_largest_first_and_a_corrupt_file_is_recomputed(tmp_path):
    (tmp_path / studies.STUDIES / "s").mkdir(parents=True)
    studies.write_importances(tmp_path, "s", 5, {"batch_size": 0.6, "augment.translate": 0.1, "lr": 0.3})
    found = studies.read_importances(tmp_path, "s", 5)
    assert list(found) == ["batch_size", "lr", "augment.translate"]
    studies.write_importances(tmp_path, "s", 5, {"lr": "high"})
    assert studies.read_importances(tmp_path, "s", 5) is None  # tune --show recomputes from the journal


def test_retrain_trains_the_presets_epochs_and_a_new_study_six_unless_told(monkeypatch, tmp_path):
    from cifar_core import tuning
    from cifar_core.cli import build_parser

    seen = {}

    def retrain(root, name, data, epochs, run_id):
        seen["epochs"] = epochs
        return root / "runs" / "r"

    monkeypatch.setattr(tuning, "retrain_best", retrain)
    monkeypatch.setattr("cifar_core.data.load_cifar10", lambda d: None)
    args = build_parser().parse_args(["tune", "--retrain", "s", "--artifacts-dir", str(tmp_path)])
    assert args.epochs is None and args.handler(args) == 0
    assert seen == {"epochs": None}  # retrain_best takes the preset's epochs (30 for cnn_bn)
    assert tuning.TRIAL_EPOCHS == 6  # a new study's trials without --epochs


@pytest.mark.slow  # two worker processes training (~50 s)
def test_jobs_2_trains_trials_in_two_worker_processes_sharing_the_journal(image_folder, tmp_path):
    import os

    root = tmp_path / "artifacts"
    assert _tune(image_folder, root, "--trials", "2", "--jobs", "2") == 0
    frame = trials_frame(open_study(root, "cnn_bn-tune"))
    finished = frame[frame["state"].isin(["complete", "pruned"])]
    # Each worker finishes the trial it is in when the study reaches 2: at most one extra.
    assert 2 <= len(finished) <= 3 and not (frame["state"] == "running").any()
    pids = {t.user_attrs["pid"] for t in open_study(root, "cnn_bn-tune").trials}
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, not this process


def test_reading_a_study_without_a_readable_journal_is_a_clear_error(tmp_path):
    from cifar_core.errors import ArtifactError
    from cifar_core.tuning import load_study

    (tmp_path / studies.STUDIES / "s").mkdir(parents=True)
    with pytest.raises(ArtifactError, match="no journal file"):
        load_study(tmp_path, "s")
    studies.journal_path(tmp_path, "s").write_text("not a journal\n")
    with pytest.raises(ArtifactError, match="cannot be read"):
        load_study(tmp_path, "s")


def test_the_recorded_seed_draws_the_same_trials_and_two_workers_draw_different_ones(tmp_path, monkeypatch):
    from cifar_core.tuning import study as runner

    space = space_for("cnn_bn")

    def objective_for(root, name, info, space, data, verbose=2):
        return lambda trial: float(suggest(trial, space)["learning_rate"])  # no training

    monkeypatch.setattr(runner, "objective_for", objective_for)
    info = {"seed": 7, "space": space}

    def drawn(name, worker=0):
        runner.run_trials(tmp_path, name, info, None, trials=3, worker=worker)
        return [t.params for t in open_study(tmp_path, name).trials]

    first = drawn("a")
    assert len(first) == 3
    assert drawn("b") == first  # same recorded seed, same trials
    plain = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=7), direction="maximize")
    plain.optimize(objective_for(None, None, None, space, None), n_trials=3)
    assert [t.params for t in plain.trials] == first  # the seed study.json records, not another
    assert drawn("c", worker=1)[0] != first[0]  # a second worker does not repeat the first


def test_baseline_queues_the_presets_own_values_as_the_first_trial_once(
    image_folder, tmp_path, monkeypatch, capsys
):
    from cifar_core.tuning import recover_interrupted
    from cifar_core.tuning import study as runner

    def objective_for(root, name, info, space, data, verbose=2):
        return lambda trial: float(suggest(trial, space)["learning_rate"])  # no training

    monkeypatch.setattr(runner, "objective_for", objective_for)
    root = tmp_path / "artifacts"
    argv = ["tune", "--model", "cnn_bn", "--epochs", "1", "--val-size", "50", "--baseline"]
    argv += ["--data-dir", str(image_folder), "--artifacts-dir", str(root)]
    assert main([*argv, "--trials", "2"]) == 0
    assert "baseline: trial 0 trains the preset's values" in capsys.readouterr().out
    frame = trials_frame(open_study(root, "cnn_bn-tune"))
    preset = TrainConfig.from_preset("cnn_bn", [])
    first = frame.iloc[0]
    assert first["baseline"] and not frame.iloc[1]["baseline"]
    assert first["param:learning_rate"] == preset.learning_rate
    assert first["param:batch_size"] == preset.batch_size
    assert first["param:augment.translate"] == preset.augment.translate
    assert frame.iloc[1]["param:learning_rate"] != preset.learning_rate  # then the sampler's own

    assert main([*argv, "--trials", "3"]) == 0  # resuming queues no second baseline
    assert "has trials already" in capsys.readouterr().out
    frame = trials_frame(open_study(root, "cnn_bn-tune"))
    assert len(frame) == 3 and frame["baseline"].sum() == 1

    # a baseline trial killed mid-way is queued again still marked as the baseline
    study = open_study(root, "cnn_bn-tune")
    killed = study.ask(fixed_distributions={})
    killed.set_user_attr("baseline", "preset")
    killed.set_user_attr("pid", 2**22 + 12345)  # no such process
    killed.set_user_attr("host", __import__("socket").gethostname())
    suggest(killed, {"learning_rate": {"log": [1e-3, 5e-3]}})
    assert recover_interrupted(study) == [killed.number]
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs.get("baseline") for t in waiting] == ["preset"]


def test_every_models_space_holds_its_presets_own_values():
    # The default space is centred on the preset: an SGD preset at learning rate 0.2
    # (resnet20) or 1.5 (fast) is searched around that, not around AdamW's 2e-3.
    from cifar_core.models import list_models
    from cifar_core.tuning.space import config_values, outside

    for model in list_models():
        preset = TrainConfig.from_preset(model, [])
        space = space_for(model)
        # a log range cannot hold 0: a preset without weight decay is searched from 1e-5
        expected = ["weight_decay"] if preset.weight_decay == 0 else []
        assert outside(config_values(preset, space), space) == expected, model
    resnet = space_for("resnet20")["learning_rate"]["log"]
    assert resnet[0] < 0.2 < resnet[1] and resnet[0] > 6e-3


def test_values_outside_a_space_are_moved_to_its_nearest_end():
    from cifar_core.tuning.space import clamp, outside, trial_params

    space = {
        "weight_decay": {"log": [1e-5, 1e-3]},
        "batch_size": {"choices": [64, 128, 256]},
        "augment.translate": {"int": [0, 4]},
        "model_args.widths": {"choices": [[16, 32], [32, 64]]},
    }
    values = {"weight_decay": 0.0, "batch_size": 100, "augment.translate": 6, "model_args.widths": [8, 8]}
    assert outside(values, space) == list(values)
    moved = clamp(values, space)
    assert moved == {
        "weight_decay": 1e-5,
        "batch_size": 128,
        "augment.translate": 4,
        "model_args.widths": [16, 32],
    }
    assert outside(moved, space) == []
    # and Optuna takes them as a trial's values (it refuses 0 on a log range)
    study = optuna.create_study()
    study.enqueue_trial(trial_params(moved))
    assert suggest(study.ask(), space) == moved
