"""``benchmark --workers 1,2``: what coordinating through PostgreSQL costs, per job and trial.

For each worker count N, in a scratch database on the server (made and dropped here) and a
scratch artifacts root:
- a tiny queue: ``jobs_per_worker * N`` one-epoch runs of ``baseline_cnn`` on a small train
  subset, trained by N ``worker`` processes;
- a tiny study: as many one-epoch trials, by ``tune --jobs N`` on the server.

It reports the medians of the coordination cost (ms from the claim to the training's start,
and from its end to the record) beside a job's training time, and jobs or trials per minute.
On 2 vCPUs two processes share the CPU: watch the overhead, not a speed-up.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd

from cifar_core import database

MODEL = "baseline_cnn"


@contextlib.contextmanager
def scratch_database(url: str):
    """A new database on ``url``'s server (its user needs CREATEDB); dropped afterwards."""
    name = f"cifar_bench_{uuid.uuid4().hex[:10]}"
    with database.connect(url, autocommit=True) as conn:
        try:
            conn.execute(f'CREATE DATABASE "{name}"')
        except Exception as error:  # psycopg's InsufficientPrivilege, named in one line
            raise database.DatabaseError(f"benchmark --workers makes a scratch database: {error}") from None
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        with database.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(workers: int) -> dict:
    threads = str(max(1, (os.cpu_count() or 1) // workers))  # the CPU shared, not oversubscribed
    return {
        **os.environ,
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "cifar_core", *argv]


def queue_round(url: str, workers: int, count: int, data_dir: str, root: Path, limits: list[str]) -> dict:
    from cifar_core.cluster import queue

    seeds = ",".join(str(i) for i in range(count))
    enqueue = _cli("run", "--models", MODEL, "--seeds", seeds, *limits, "--no-export", "--queue", url)
    subprocess.run(
        [*enqueue, "--data-dir", data_dir, "--artifacts-dir", str(root)],
        check=True,
        env=_env(1),
        capture_output=True,
    )
    argv = _cli(
        "worker", "--queue", url, "--artifacts-dir", str(root), "--data-dir", data_dir, "--poll", "0.5"
    )
    start = time.perf_counter()
    procs = [
        subprocess.Popen(argv, env=_env(workers), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(workers)
    ]
    failed = [p.stderr.read().decode()[-500:] for p in procs if p.wait()]
    wall = time.perf_counter() - start
    if failed:
        raise RuntimeError(f"a worker failed: {failed[0]}")
    frame = queue.job_timings(url)
    if len(frame) < count:
        raise RuntimeError(f"{count - len(frame)} of {count} jobs were not trained: see `status --queue`")
    return _row("queue", workers, frame, wall)


def study_round(url: str, workers: int, count: int, data_dir: str, root: Path, limits: list[str]) -> dict:
    import optuna

    argv = _cli("tune", "--model", MODEL, "--study", "bench", "--trials", str(count), *limits)
    argv += ["--storage", url, "--jobs", str(workers), "--data-dir", data_dir, "--artifacts-dir", str(root)]
    start = time.perf_counter()
    done = subprocess.run(argv, env=_env(workers), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        said = [
            line
            for line in done.stderr.splitlines()
            if line.startswith(("error:", "Traceback")) or "Error" in line
        ]
        raise RuntimeError(f"tune failed: {said[-3:] or done.stderr[-500:]}")
    study = optuna.load_study(study_name="bench", storage=database.sqlalchemy_url(url))
    rows = []
    for t in study.get_trials(deepcopy=False):
        if "ended_at" not in t.user_attrs or t.datetime_complete is None:
            continue
        began, ended = t.user_attrs["began_at"], t.user_attrs["ended_at"]
        rows.append(
            {
                "worker": f"{t.user_attrs.get('host')}:{t.user_attrs.get('pid')}",
                "claim_to_start_ms": (began - t.datetime_start.timestamp()) * 1000,
                "end_to_record_ms": (t.datetime_complete.timestamp() - ended) * 1000,
                "train_s": ended - began,
            }
        )
    return _row("study", workers, pd.DataFrame(rows), wall)


def _row(kind: str, workers: int, frame: pd.DataFrame, wall: float) -> dict:
    return {
        "kind": kind,
        "workers": workers,
        "items": len(frame),
        "by_workers": int(frame["worker"].nunique()) if len(frame) else 0,
        "wall_s": wall,
        "per_minute": 60 * len(frame) / wall,
        "claim_to_start_ms": float(frame["claim_to_start_ms"].median()),
        "end_to_record_ms": float(frame["end_to_record_ms"].median()),
        "train_s": float(frame["train_s"].median()),
    }


def measure(
    url: str,
    workers: list[int],
    data_dir: str,
    per_worker: int = 3,
    train_limit: int = 2000,
    val_size: int = 500,
    say=print,
) -> list[dict]:
    """One queue round and one study round per worker count; rows for ``table``."""
    database.check(url)
    limits = ["--epochs", "1", "--train-limit", str(train_limit), "--val-size", str(val_size)]
    rows = []
    for n in workers:
        for kind, round_ in (("queue", queue_round), ("study", study_round)):
            say(f"{kind}, {n} worker(s): {per_worker * n} {'jobs' if kind == 'queue' else 'trials'}…")
            with scratch_database(url) as scratch, tempfile.TemporaryDirectory(prefix="cifar_bench_") as tmp:
                rows.append(round_(scratch, n, per_worker * n, data_dir, Path(tmp), limits))
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        f"{'kind':<6}{'workers':>8}{'items':>7}{'claim→start ms':>16}{'end→record ms':>15}"
        f"{'item s':>9}{'overhead':>10}{'per min':>9}{'wall s':>8}"
    ]
    for r in rows:
        overhead = (r["claim_to_start_ms"] + r["end_to_record_ms"]) / 1000 / r["train_s"]
        lines.append(
            f"{r['kind']:<6}{r['workers']:>8}{r['items']:>7}{r['claim_to_start_ms']:>16.0f}"
            f"{r['end_to_record_ms']:>15.0f}{r['train_s']:>9.1f}{overhead:>10.2%}{r['per_minute']:>9.1f}{r['wall_s']:>8.0f}"
        )
    return "\n".join(lines)
