"""Work on several machines against a real PostgreSQL server (tests/pg.py): the job queue
and its workers, studies on the server, and their faults (a bad URL, a SIGKILLed worker, a
restarted server, workers that share no localhost)."""

from __future__ import annotations

import os
import time

import pytest
from pg import (
    Proxy,
    kill,
    network_namespaces,
    remove_namespaces,
    restart_server,
    start,
    wait_for,
)

from cifar_core import artifacts, database
from cifar_core.artifacts.rootmark import ROOT_MARK
from cifar_core.artifacts.work import WORK_HISTORY
from cifar_core.cli import main
from cifar_core.cluster import queue

TINY = ["--epochs", "1", "--val-size", "50", "--no-export"]


def _enqueue(url, folder, root, *extra, models="cnn_bn", seeds="0,1") -> int:
    argv = ["run", "--models", models, "--seeds", seeds, "--queue", url, *TINY, *extra]
    return main([*argv, "--data-dir", str(folder), "--artifacts-dir", str(root)])


def _log(url) -> list[tuple]:
    with database.connect(url) as conn:
        return conn.execute(
            "SELECT job_id, attempt, worker, outcome, ended_at IS NOT NULL FROM cifar_core_job_log "
            "ORDER BY job_id, attempt"
        ).fetchall()


def _server_started(url):
    with database.connect(url) as conn:
        return conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


def test_a_wrong_url_password_or_database_is_one_line_and_writes_nothing(pg, image_folder, tmp_path, capsys):
    user_host, db = pg.rsplit("/", 1)
    bad = {
        "refused": pg.replace(f":{database._parts(pg).port}/", ":1/"),
        "wrong password": pg.replace(f":{database._parts(pg).password}@", ":not-it@"),
        "does not exist": f"{user_host}/no_such_db",
        "not a PostgreSQL URL": "mysql://someone@somewhere/db",
    }
    for what, url in bad.items():
        root = tmp_path / what.replace(" ", "-")
        for argv in (
            ["worker", "--queue", url],
            ["run", "--models", "cnn_bn", "--queue", url, *TINY, "--data-dir", str(image_folder)],
            ["tune", "--model", "cnn_bn", "--storage", url, "--data-dir", str(image_folder)],
        ):
            capsys.readouterr()
            assert main([*argv, "--artifacts-dir", str(root)]) == 2, (what, argv[0])
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and what in err.lower() or what in err, (what, err)
            assert (":not-it@" not in err) and (database._parts(pg).password not in err)
            assert not root.exists(), f"{argv[0]} wrote into {root} with a bad server"


def test_queued_runs_are_trained_once_by_a_worker_and_a_finished_run_is_skipped(
    pg, image_folder, tmp_path, capsys
):
    root = tmp_path / "shared-root"
    assert _enqueue(pg, image_folder, root) == 0
    assert "2 jobs queued" in capsys.readouterr().out
    assert _enqueue(pg, image_folder, root) == 0  # the same runs again: one queue entry each
    assert capsys.readouterr().out.count("is queued already") == 2
    assert queue.pending(pg) == {"queued": 2, "running": 0}
    assert main(["status", "--artifacts-dir", str(root), "--queue", pg]) == 0
    assert "2 queued" in capsys.readouterr().out

    assert main(["worker", "--queue", pg, "--artifacts-dir", str(root), "--poll", "0.5"]) == 0
    assert "2 jobs taken here, 2 trained" in capsys.readouterr().out
    runs = artifacts.list_runs(root)
    assert len(runs) == 2
    kept = [(root / "runs" / r / artifacts.MODEL).is_file() for r in runs]
    assert sorted(kept) == [False, True]  # --seeds: the first seed in full, the other lean
    frame = queue.jobs_frame(pg)
    assert frame["state"].tolist() == ["done", "done"] and set(frame["run_id"]) == set(runs)
    assert frame["host"].notna().all() and frame["worker"].str.contains(":").all()

    assert _enqueue(pg, image_folder, root) == 0  # finished runs are kept, not queued
    assert capsys.readouterr().out.count("kept") == 2
    assert queue.pending(pg) == {"queued": 0, "running": 0}


def test_a_worker_whose_root_is_not_the_queues_takes_no_job(pg, image_folder, tmp_path, capsys):
    root, other = tmp_path / "queue-root", tmp_path / "other-root"
    assert _enqueue(pg, image_folder, root, seeds="0") == 0
    capsys.readouterr()
    assert main(["worker", "--queue", pg, "--artifacts-dir", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not the queue's" in err and str(root) in err
    assert queue.pending(pg)["queued"] == 1 and not (other / "runs").exists()
    (root / ROOT_MARK).write_text("{not json")  # a corrupt mark: one line too
    assert main(["worker", "--queue", pg, "--artifacts-dir", str(root)]) == 2
    assert "unreadable" in capsys.readouterr().err


def test_training_now_shows_the_queue_and_cancels_a_queued_job(pg, image_folder, tmp_path, monkeypatch):
    from test_status import open_training_now

    root = tmp_path / "root"
    assert _enqueue(pg, image_folder, root, seeds="0,1") == 0
    monkeypatch.setenv("CIFAR_DB", pg)
    at = open_training_now(monkeypatch, root)
    table = next(d.value for d in at.dataframe if "attempts" in d.value)
    assert table["state"].tolist() == ["queued", "queued"] and "2 queued" in " ".join(
        c.value for c in at.caption
    )
    first = table["run_id"].iloc[0]
    at.selectbox(key="training_now_queued").select(first).run()
    at.button(key="training_now_cancel").click().run()
    assert queue.jobs_frame(pg).set_index("run_id").loc[first, "state"] == "cancelled"
    assert not at.exception
    monkeypatch.setenv("CIFAR_DB", pg.replace("@", "x@", 1))  # a wrong user: one warning, no traceback
    at = open_training_now(monkeypatch, root)
    assert any("Job queue:" in w.value for w in at.warning) and not at.exception


def test_queued_jobs_can_be_cancelled_and_a_ladder_queues_its_rungs(pg, image_folder, tmp_path, capsys):
    root = tmp_path / "root"
    argv = ["ladder", "run", "seed004", "--rungs", "1-2", "--epochs", "1", "--val-size", "50"]
    assert main([*argv, "--queue", pg, "--data-dir", str(image_folder), "--artifacts-dir", str(root)]) == 0
    frame = queue.jobs_frame(pg)
    assert frame["run_id"].tolist() == ["seed004-01-base", "seed004-02-more-layers"]
    assert (
        main(["status", "--stop", "seed004-02-more-layers", "--queue", pg, "--artifacts-dir", str(root)]) == 0
    )
    assert "cancelled the queued job" in capsys.readouterr().out
    assert queue.jobs_frame(pg)["state"].tolist() == ["queued", "cancelled"]
    assert main(["worker", "--queue", pg, "--artifacts-dir", str(root), "--poll", "0.5"]) == 0
    assert artifacts.list_runs(root) == ["seed004-01-base"]
    assert artifacts.read_manifest(root, "seed004-01-base")["ladder"]["ladder"] == "seed004"


def test_a_sigkilled_worker_s_job_is_retried_by_the_other_and_nothing_runs_twice(pg, image_folder, tmp_path):
    root = tmp_path / "root"
    argv = ["run", "--models", "cnn_bn", "--seeds", "0,1,2", "--epochs", "3", "--val-size", "50"]
    assert (
        main(
            [
                *argv,
                "--no-export",
                "--queue",
                pg,
                "--data-dir",
                str(image_folder),
                "--artifacts-dir",
                str(root),
            ]
        )
        == 0
    )
    worker = ["worker", "--queue", pg, "--artifacts-dir", str(root), "--heartbeat", "1", "--poll", "0.5"]
    first = start(worker, tmp_path / "a.log")
    # The first worker holds a job: kill it once its run has a checkpoint (an epoch done).
    wait_for(lambda: list((root / "work").rglob(WORK_HISTORY)), 120, "a finished epoch")
    second = start(worker, tmp_path / "b.log")
    kill(first)
    assert second.wait(timeout=300) == 0, (tmp_path / "b.log").read_text()[-3000:]
    out = (tmp_path / "b.log").read_text()
    assert "given back" in out and "Traceback" not in out
    assert "attempt 2" in out and "resuming after epoch" in out  # from the killed one's checkpoint
    assert sorted(artifacts.list_runs(root)) == sorted(queue.jobs_frame(pg)["run_id"])
    assert len(artifacts.list_runs(root)) == 3
    log = _log(pg)
    trained = [row for row in log if row[3] == "trained"]
    assert len(trained) == 3 and len({row[0] for row in trained}) == 3  # each run once
    cut = [row for row in log if not row[4]]
    assert len(cut) == 1  # the killed attempt: begun, never ended
    assert any(r[0] == cut[0][0] and r[1] > cut[0][1] and r[3] == "trained" for r in log)
    assert set(queue.jobs_frame(pg)["state"]) == {"done"}


def test_a_restarted_server_does_not_lose_the_workers_jobs(pg, image_folder, tmp_path):
    pg_dir = os.environ.get("CIFAR_TEST_PG_DIR")
    if not pg_dir:
        pytest.skip("needs CIFAR_TEST_PG_DIR (the folder .ci/postgres prints first) to restart the server")
    root = tmp_path / "root"
    argv = ["run", "--models", "cnn_bn", "--seeds", "0,1", "--epochs", "3", "--val-size", "50", "--no-export"]
    assert main([*argv, "--queue", pg, "--data-dir", str(image_folder), "--artifacts-dir", str(root)]) == 0
    worker = start(
        ["worker", "--queue", pg, "--artifacts-dir", str(root), "--heartbeat", "1", "--poll", "0.5"],
        tmp_path / "w.log",
    )
    wait_for(lambda: "training run" in (tmp_path / "w.log").read_text(), 120, "a job to start")
    started = _server_started(pg)
    restart_server(pg_dir)
    assert _server_started(pg) > started  # it did restart, in the middle of the job
    assert worker.wait(timeout=300) == 0, (tmp_path / "w.log").read_text()[-3000:]
    out = (tmp_path / "w.log").read_text()
    assert "Traceback" not in out
    assert len(artifacts.list_runs(root)) == 2 and set(queue.jobs_frame(pg)["state"]) == {"done"}


def test_two_tune_processes_share_a_study_on_the_server_and_retry_a_killed_trial(
    pg, image_folder, tmp_path, monkeypatch
):
    from optuna.trial import TrialState

    from cifar_core import tuning
    from cifar_core.artifacts import studies
    from cifar_core.errors import ArtifactError
    from cifar_core.tuning import storage

    root = tmp_path / "root"
    space = tmp_path / "space.json"
    space.write_text('{"learning_rate": {"log": [1e-3, 5e-3]}, "weight_decay": null}')
    argv = ["tune", "--model", "cnn_bn", "--epochs", "3", "--val-size", "50", "--space", str(space)]
    argv += ["--trials", "5", "--storage", pg, "--heartbeat", "1"]
    argv += ["--data-dir", str(image_folder), "--artifacts-dir", str(root)]
    first = start(argv, tmp_path / "a.log")

    def running_trial():
        if not (root / "studies" / "cnn_bn-tune" / "study.json").exists():
            return None
        try:  # through the engine: a bare load_study races the processes creating the tables
            study = storage.load_study(root, "cnn_bn-tune", url=pg)
        except ArtifactError:
            return None
        return [
            t for t in study.get_trials(states=(TrialState.RUNNING,)) if t.user_attrs.get("pid") == first.pid
        ]

    wait_for(running_trial, 120, "the first process's trial")
    second = start(argv, tmp_path / "b.log")
    wait_for(lambda: "trial" in (tmp_path / "b.log").read_text(), 120, "the second process's first trial")
    doomed = wait_for(running_trial, 60, "the first process in a trial")[0]
    kill(first)
    assert second.wait(timeout=300) == 0, (tmp_path / "b.log").read_text()[-3000:]
    assert "Traceback" not in (tmp_path / "b.log").read_text()

    monkeypatch.setenv("CIFAR_DB", pg)  # the password of the server study.json names
    assert studies.list_studies(root) == ["cnn_bn-tune"]  # on the server, no journal file
    assert not studies.journal_path(root, "cnn_bn-tune").exists()
    assert "password" not in (root / "studies" / "cnn_bn-tune" / "study.json").read_text()
    frame = tuning.read_study(root, "cnn_bn-tune")["trials"]  # as the Tuning page reads it
    finished = frame[frame["state"].isin(["complete", "pruned"])]
    assert len(finished) == 5  # exactly the trials asked for: none lost, none twice
    assert frame["state"].tolist().count("fail") == 1 and not (frame["state"] == "running").any()
    retry = frame[frame["resumes"] == doomed.number]
    assert len(retry) == 1 and retry.iloc[0]["state"] in ("complete", "pruned")
    assert retry.iloc[0]["param:learning_rate"] == doomed.params["learning_rate"]  # same values
    assert retry.iloc[0]["worker"].endswith(f":{second.pid}")
    from test_dashboard import open_page

    at = open_page(monkeypatch, root, "tuning")  # the page reads it from the server
    assert not at.exception and not at.error and len(at.dataframe[0].value) == 6


def test_workers_in_two_network_namespaces_share_the_queue_through_the_network(pg, image_folder, tmp_path):
    """Nothing relies on the workers being one process tree or sharing localhost: each worker
    runs in a network namespace of its own and reaches the server by an address of this one."""
    import subprocess
    import sys

    parts = database._parts(pg)
    root = tmp_path / "root"
    assert _enqueue(pg, image_folder, root, seeds="0,1,2,3") == 0
    spaces = network_namespaces(2)
    proxy = Proxy([address for _, address in spaces], 15432, (parts.hostname, parts.port))
    try:
        workers = []
        for k, (name, address) in enumerate(spaces):
            url = pg.replace(f"@{parts.hostname}:{parts.port}/", f"@{address}:15432/")
            probe = f"import socket; socket.create_connection(('127.0.0.1', {parts.port}), timeout=2)"
            alone = subprocess.run(
                ["ip", "netns", "exec", name, sys.executable, "-c", probe], capture_output=True
            )
            assert alone.returncode != 0  # the server's loopback is not this namespace's
            argv = ["worker", "--queue", url, "--artifacts-dir", str(root), "--poll", "0.5"]
            workers.append(start(argv, tmp_path / f"w{k}.log", prefix=["ip", "netns", "exec", name]))
        for k, worker in enumerate(workers):
            assert worker.wait(timeout=300) == 0, (tmp_path / f"w{k}.log").read_text()[-3000:]
    finally:
        proxy.close()
        remove_namespaces(spaces)
    assert len(artifacts.list_runs(root)) == 4 and set(queue.jobs_frame(pg)["state"]) == {"done"}
    by_worker = queue.jobs_frame(pg)["worker"].value_counts()
    assert len(by_worker) == 2, by_worker  # both namespaces took jobs


@pytest.mark.slow  # two rounds of worker processes (~1 min)
def test_benchmark_workers_gives_the_coordination_cost_per_job_and_trial(pg, image_folder):
    from cifar_core.benchmark import coordination

    rows = coordination.measure(
        pg, [1], str(image_folder), per_worker=2, train_limit=150, val_size=50, say=lambda s: None
    )
    assert [(r["kind"], r["workers"], r["items"]) for r in rows] == [("queue", 1, 2), ("study", 1, 2)]
    for r in rows:  # milliseconds of coordination around seconds of training
        assert 0 <= r["claim_to_start_ms"] < 5000 and 0 <= r["end_to_record_ms"] < 5000 and r["train_s"] > 0
    text = coordination.table(rows)
    assert "claim→start ms" in text and len(text.splitlines()) == 3
    with database.connect(pg) as conn:  # the scratch databases are gone
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'cifar_bench_%'").fetchone()[
            0
        ]
    assert left == 0


def test_a_worker_asked_to_stop_gives_its_job_back_and_wait_keeps_a_worker_waiting(
    pg, image_folder, tmp_path
):
    import signal

    root = tmp_path / "root"
    argv = ["run", "--models", "cnn_bn", "--seeds", "0", "--epochs", "40", "--val-size", "50", "--no-export"]
    assert main([*argv, "--queue", pg, "--data-dir", str(image_folder), "--artifacts-dir", str(root)]) == 0
    worker = ["worker", "--queue", pg, "--artifacts-dir", str(root), "--heartbeat", "1", "--poll", "0.5"]
    first = start(worker, tmp_path / "a.log")
    wait_for(lambda: list((root / "work").rglob(WORK_HISTORY)), 120, "a finished epoch")
    first.send_signal(signal.SIGTERM)  # as a service manager stops it; Ctrl-C is SIGINT, the same
    assert first.wait(timeout=120) == 0, (tmp_path / "a.log").read_text()[-2000:]
    assert "back in the queue" in (tmp_path / "a.log").read_text()
    assert queue.jobs_frame(pg)["state"].tolist() == ["queued"] and not artifacts.list_runs(root)

    waiting = start([*worker, "--wait"], tmp_path / "b.log")  # resumes it, then waits for more
    wait_for(lambda: artifacts.list_runs(root), 240, "the given-back run to finish")
    assert "resuming after epoch" in (tmp_path / "b.log").read_text()
    time.sleep(2)
    assert waiting.poll() is None  # --wait: still there with an empty queue
    more = ["run", "--models", "cnn_bn", "--seeds", "1", "--epochs", "1", "--val-size", "50", "--no-export"]
    assert main([*more, "--queue", pg, "--data-dir", str(image_folder), "--artifacts-dir", str(root)]) == 0
    wait_for(lambda: len(artifacts.list_runs(root)) == 2, 120, "the job queued later")
    waiting.send_signal(signal.SIGINT)
    assert waiting.wait(timeout=60) == 0
    assert set(queue.jobs_frame(pg)["state"]) == {"done"}
