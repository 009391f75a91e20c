"""Training now: progress files, ETA, stop requests, ``status`` and the page, on real
trainer processes (tiny data) and simulated ones (no TensorFlow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, tiny_config
from streamlit.testing.v1 import AppTest
from trainers import command_of, simulate, start, train_args, training, wait_for

from cifar_core.artifacts import work as files
from cifar_core.errors import ArtifactError
from cifar_core.training import progress, status

APP = str(ROOT / "dashboard" / "app.py")
PAGE = str(ROOT / "dashboard" / "views" / "training_now.py")


def open_training_now(monkeypatch, root, app: bool = False) -> AppTest:
    """The page alone (quick), or inside the app (``app``: to switch to the Leaderboard;
    the app's first visit also starts loading every model in the background)."""
    monkeypatch.setenv("CIFAR_ARTIFACTS", str(root))
    at = AppTest.from_file(APP if app else PAGE, default_timeout=120)
    if app:
        at.run()
        at.switch_page("views/training_now.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def curve_points(at: AppTest) -> int:
    (chart,) = at.get("plotly_chart")
    return len(json.loads(chart.proto.spec)["data"][0]["x"])


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [c.value for c in at.code]
    parts += [w.value for w in at.warning] + [i.value for i in at.info] + [s.value for s in at.success]
    parts += [bar.proto.text for bar in at.get("progress")]
    return "\n".join(parts)


def test_the_eta_is_the_rest_of_this_epoch_plus_the_epochs_left_at_the_recent_pace():
    # 10 epochs, the 4th (index 3) half done after 5 s; earlier epochs 30 s, 10 s, 10 s: it
    # is on the recent pace (10 s per epoch).
    assert progress.eta_seconds(10, 3, 50, 100, 5.0, [30.0, 10.0, 10.0]) == pytest.approx(5 + 6 * 10)
    # Resumed on a quieter machine: a quarter of the epoch in 1 s (4 s per epoch against the
    # recent 10 s); the pace is 1/4 of the way to the new one, then all of it at the end.
    assert progress.eta_seconds(10, 3, 25, 100, 1.0, [10.0] * 3) == pytest.approx(7.5 + 6 * 8.5)
    assert progress.eta_seconds(10, 3, 100, 100, 4.0, [10.0] * 3) == pytest.approx(6 * 4)
    # No finished epoch yet: this epoch's steps set the pace (2 s for 10 of 100 steps).
    assert progress.eta_seconds(4, 0, 10, 100, 2.0, []) == pytest.approx(18 + 3 * 20)
    assert progress.eta_seconds(4, 0, 0, 100, 0.0, []) is None  # no pace yet
    assert progress.eta_seconds(4, 4, 0, 100, 0.0, [5.0]) == 0.0  # done
    assert progress.format_duration(3725) == "1 h 02 min" and progress.format_duration(75) == "1 min 15 s"
    assert progress.format_duration(None) == "—"


def test_a_tracker_writes_at_most_once_a_second_and_sees_a_stop_request(tmp_path):
    writer = progress.ProgressWriter(tmp_path, run="r", kind="train", model="m", epochs=3, command="cmd")
    writer.begin_phase(1, 1, steps=100, batch_size=32)
    writer.begin_epoch(0)
    first = files.progress_file(tmp_path).read_text()
    for step in range(1, 50):
        writer.step(step)  # within the second: no rewrite
    assert files.progress_file(tmp_path).read_text() == first
    assert writer.end_epoch(0, 1.5) is False
    saved = json.loads(files.progress_file(tmp_path).read_text())
    assert saved["epoch"] == 1 and saved["eta_s"] == pytest.approx(3.0) and saved["command"] == "cmd"
    progress.request_stop(tmp_path)
    assert writer.end_epoch(1, 1.5) is True
    assert json.loads(files.progress_file(tmp_path).read_text())["stage"] == "stopping"


def test_the_lock_names_a_live_trainer_and_frees_when_it_dies(tmp_path):
    proc = simulate(tmp_path, "sim-a", epochs=100, epoch_s=0.3)
    try:
        folder = files.work_dir(tmp_path, "sim-a")
        wait_for(lambda: files.lock_holder(folder) == proc.pid, 60, "the lock")
        (t,) = status.trainings(tmp_path)[0]
        assert t.state == status.RUNNING and t.pid == proc.pid and t.memory_mb > 0
        # A second trainer of the same folder fails clearly (after its short wait).
        from cifar_core.errors import RunLockedError

        with pytest.raises(RunLockedError), files.lock_folder(folder):
            pass
    finally:
        proc.kill()
        proc.wait()
    assert files.lock_holder(folder) is None


def test_a_corrupt_history_is_a_warning_naming_the_folder_and_the_page_keeps_working(monkeypatch, tmp_path):
    good = files.work_dir(tmp_path, "good-run")
    good.mkdir(parents=True)
    (good / "config.json").write_text(json.dumps({"config": {"model": "cnn_bn", "epochs": 5}}))
    (good / "history.csv").write_text(
        "epoch,phase,loss,accuracy,val_loss,val_accuracy,epoch_time_s\n0,1,2,0.3,2,0.3,9\n"
    )
    (good / "backup-p1").mkdir()
    bad = files.work_dir(tmp_path, "bad-run")
    bad.mkdir(parents=True)
    (bad / "config.json").write_text(json.dumps({"config": {"model": "fast", "epochs": 5}}))
    (bad / "history.csv").write_bytes(b'epoch,accuracy\n0,"unterminated\x00\x01')
    failed = files.work_dir(tmp_path, "failed-run")
    failed.mkdir(parents=True)
    (failed / "config.json").write_text(json.dumps({"config": {"model": "vgg10", "epochs": 5}}))
    (failed / "error.txt").write_text("RuntimeError: disk full\n")

    found, warnings = status.trainings(tmp_path)
    states = {t.run: t.label for t in found}
    assert states == {"good-run": "stopped, resumable", "bad-run": "stopped", "failed-run": "failed"}
    assert any("bad-run" in w and "history.csv" in w for w in warnings)
    with pytest.raises(ArtifactError, match="not running"):
        status.stop(tmp_path, "good-run")
    with pytest.raises(ArtifactError, match="no training"):
        status.stop(tmp_path, "../elsewhere")

    at = open_training_now(monkeypatch, tmp_path)
    assert any("bad-run" in w.value for w in at.warning)
    assert set(at.dataframe[0].value["training"]) == {"good-run", "bad-run", "failed-run"}
    at.selectbox(key="training_now_pick").select_index(2).run()
    assert not at.exception


def test_a_fit_that_fails_leaves_its_error_for_status(tmp_path, tiny_data):
    import keras

    from cifar_core.data import run_splits
    from cifar_core.training.fitting import resumable_fit

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("the disk is full\nat epoch 1")

    config = tiny_config("baseline_cnn", epochs=2)
    splits = run_splits(tiny_data, config.val_size, config.seed, config.train_limit)
    folder = files.work_dir(tmp_path, "boom")
    with pytest.raises(RuntimeError), resumable_fit(folder, config, tiny_data, splits, callbacks=[Boom()]):
        pass
    (t,) = status.trainings(tmp_path)[0]
    assert t.state == status.FAILED and t.error == "RuntimeError: at epoch 1"


def test_the_page_only_reads_when_started_read_only(monkeypatch, tmp_path):
    proc = simulate(tmp_path, "sim-b")
    try:
        wait_for(lambda: training(tmp_path, 1), 60, "a simulated epoch")
        at = open_training_now(monkeypatch, tmp_path)
        assert [b.label for b in at.button] == ["Stop…"]
        monkeypatch.setenv("CIFAR_DASHBOARD_READ_ONLY", "1")
        at = open_training_now(monkeypatch, tmp_path)
        assert not at.button and "only reads" in texts(at)
    finally:
        proc.kill()
        proc.wait()


def test_beyond_the_loopback_stop_and_trust_need_the_admin_token(monkeypatch, tmp_path):
    from streamlit import config

    proc = simulate(tmp_path, "sim-c")
    address = config.get_option("server.address")
    try:
        wait_for(lambda: training(tmp_path, 1), 60, "a simulated epoch")
        assert address in ("localhost", "127.0.0.1")  # the repo's config: this machine only
        config.set_option("server.address", "0.0.0.0")  # a team's server
        at = open_training_now(monkeypatch, tmp_path)
        assert not at.button and "no admin token: it only reads" in texts(at)
        monkeypatch.setenv("CIFAR_ADMIN_TOKEN", "s3cret-token")
        at = open_training_now(monkeypatch, tmp_path, app=True)  # the sidebar's token field
        assert not at.button and "need the admin token" in texts(at)
        at.sidebar.text_input(key="admin_token_given").input("wrong").run()
        assert not at.button
        at.sidebar.text_input(key="admin_token_given").input("s3cret-token").run()
        assert [b.label for b in at.button] == ["Stop…"]
    finally:
        config.set_option("server.address", address)
        proc.kill()
        proc.wait()


def test_a_live_training_is_watched_stopped_killed_resumed_and_then_on_the_leaderboard(
    monkeypatch, tmp_path, image_folder
):
    root = tmp_path / "artifacts"
    args = train_args(root, image_folder, epochs=30)
    at = open_training_now(monkeypatch, root, app=True)  # the page is warm before the trainer starts
    assert "Nothing is training" in texts(at)
    log = tmp_path / "trainer.log"
    proc = start(args, log)
    try:
        live = wait_for(lambda: training(root, 1), 180, "the first epoch", proc, log)
        assert live.state == status.RUNNING and live.command == command_of(args)
        at.run()
        table = at.dataframe[0].value
        assert list(table["training"]) == [live.run] and list(table["state"]) == ["running"]
        before = curve_points(at)
        wait_for(lambda: training(root, before + 2), 120, "two more epochs", proc, log)
        # Paused while the page is clicked: its 30 epochs of 0.1-0.2 s could end before the Stop.
        proc.send_signal(signal.SIGSTOP)
        at.run()
        assert curve_points(at) >= before + 2  # the curve grew on a refresh
        assert "ETA" in texts(at) and table["ETA"].iloc[0]

        at.button(key=f"stop_{live.key}").click().run()
        at.button(key=f"yes_{live.key}").click().run()
        assert files.stop_request(live.folder).exists() and "Stop requested" in texts(at)
        proc.send_signal(signal.SIGCONT)
        assert proc.wait(timeout=120) == 3  # stopped at the end of an epoch
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert "resume with: " + command_of(args) in output and "ETA" in output
    stopped = training(root)
    done = stopped.history["epoch"].tolist()
    assert stopped.label == "stopped, resumable" and done == list(range(len(done))) and len(done) < 30
    assert stopped.command == command_of(args) and any(stopped.folder.glob("backup-p1"))
    at.run()
    assert "stopped, resumable" in list(at.dataframe[0].value["state"]) and command_of(args) in texts(at)

    # Resumed by its command, then killed: stopped, resumable again, as status says.
    proc = start(args, tmp_path / "resumed.log")
    try:
        wait_for(
            lambda: training(root, len(done) + 1), 180, "a resumed epoch", proc, tmp_path / "resumed.log"
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = training(root)
    assert (
        killed.label == "stopped, resumable" and killed.resume_hint == command_of(args) and not killed.error
    )
    shown = subprocess.run(
        [sys.executable, "-m", "cifar_core", "status", "--artifacts-dir", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and "stopped, resumable" in shown.stdout and command_of(args) in shown.stdout

    # The command resumes it from the epoch after the last checkpoint, to the end.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    resumed = subprocess.run(
        [sys.executable, "-m", "cifar_core", *args], cwd=ROOT, env=env, capture_output=True
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    from cifar_core import artifacts

    (run_id,) = artifacts.list_runs(root)
    run = artifacts.read_run(root, run_id)
    assert run.history["epoch"].tolist() == list(range(30)) and run.manifest["resumed"]
    assert status.trainings(root) == ([], [])

    at.run()  # the same session: the training has left the page for the Leaderboard
    assert f"{run_id} finished" in texts(at) and "Nothing is training" in texts(at)
    at.switch_page("views/leaderboard.py")
    at.run()
    assert "baseline_cnn" in set(at.dataframe[0].value["label"])


def test_a_stopped_trial_is_queued_again_to_resume():
    import optuna

    from cifar_core.tuning.study import requeue_stopped

    study = optuna.create_study(direction="maximize")
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
    trial.set_user_attr("stopped", True)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert requeue_stopped(study) == [0]
    assert requeue_stopped(study) == []  # once
    (queued,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert queued.system_attrs["fixed_params"] == trial.params and queued.user_attrs["resumes"] == 0


def test_a_recorded_fit_stops_after_the_epoch_a_stop_was_requested_in(tmp_path, image_folder):
    import keras

    from cifar_core.training import tracking

    data = tracking.load_data(image_folder, val_size=50)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    with tracking.Run("rec", data, root=tmp_path) as run:
        progress.request_stop(run.work)
        model.fit(data.x_train, data.y_train, epochs=5, verbose=0, callbacks=[run.callback])
        assert run.epochs == 1
        (t,) = status.trainings(tmp_path)[0]
        assert t.kind == "recorded" and "notebook" in t.resume_hint


def test_a_batch_eta_adds_the_models_left_at_their_finished_runs_time(tmp_path):
    for run_id, model, seconds in (("cnn_bn-1", "cnn_bn", 600.0), ("cnn_bn-2", "cnn_bn", 800.0)):
        folder = tmp_path / "runs" / run_id
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"model": model}))
        (folder / "metrics.json").write_text(json.dumps({"train_time_s": seconds}))
    batch = {"kind": "zoo", "name": "run --all", "index": 1, "total": 3}
    batch["remaining"] = [{"label": "cnn_bn", "model": "cnn_bn"}, {"label": "vgg10", "model": "vgg10"}]
    zoo = status.Training("a", tmp_path, status.RUNNING, True, "a", train_s=100.0, eta_s=50.0, batch=batch)
    study = {"kind": "study", "name": "s", "index": 2, "total": 4, "remaining": []}
    trial = status.Training("b", tmp_path, status.RUNNING, True, "b", train_s=30.0, eta_s=10.0, batch=study)
    status._batch_etas(tmp_path, [zoo, trial])
    # this one's 50 s, cnn_bn at the median of its runs (700 s), vgg10 (no run) at this one's 150 s
    assert zoo.batch_eta_s == pytest.approx(50 + 700 + 150)
    assert trial.batch_eta_s == pytest.approx(10 + 2 * 40)  # two trials left, each like this one
    assert status.batch_text(zoo) == "zoo run --all: 1 of 3"


def test_a_kill_during_the_checkpoint_falls_back_to_the_previous_one(tmp_path):
    import keras
    import numpy as np

    from cifar_core.training.callbacks import Backup

    def fit(epochs):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile("sgd", "mse")
        seen = []
        end = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
        backup = Backup(str(tmp_path / "backup"), delete_checkpoint=False, double_checkpoint=True)
        model.fit(np.zeros((8, 4)), np.zeros((8, 2)), epochs=epochs, verbose=0, callbacks=[end, backup])
        return seen

    assert fit(3) == [0, 1, 2]
    metadata = next((tmp_path / "backup").glob("training_metadata.json"))
    metadata.write_text("")  # what a SIGKILL in the middle of writing it leaves
    assert fit(5) == [2, 3, 4]  # resumed from the previous checkpoint (after epoch 2), not a crash
