"""What a worker does with one job: train its run in the shared artifacts root.

The task runs in procrastinate's worker thread while the worker's heartbeat goes on; each
attempt is logged in ``cifar_core_job_log`` (worker, host, when the training began and
ended, how it ended). A finished run is kept, not trained again; a run whose training was
cut off resumes from its checkpoints; a stop request (``status --stop``, the dashboard's
Stop) ends the job as "stopped", resumable by queueing it again.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from cifar_core import database
from cifar_core.errors import CifarError, DataError, RunLockedError, StopRequested

QUEUE = "cifar_core_runs"
TASK = "cifar_core.train_run"
LOCK_WAIT_S = 5.0


class WorkerShutdown(Exception):
    """The worker was asked to stop (Ctrl-C, SIGTERM): its job goes back to the queue."""


def declare(app):
    """The queue's one task on ``app``: a job its worker gave back when asked to stop is
    queued again (procrastinate's retry), for any worker to resume."""
    from procrastinate import RetryStrategy

    @app.task(
        name=TASK,
        queue=QUEUE,
        pass_context=True,
        retry=RetryStrategy(max_attempts=10, retry_exceptions={WorkerShutdown}),
    )
    def train_run(context, **job):
        return train_queued(context, job)

    return train_run


def _log(url: str, job_id: int, attempt: int, worker: str | None = None, outcome: str | None = None) -> None:
    with database.connect(url) as conn:
        if outcome is None:
            conn.execute(
                "INSERT INTO cifar_core_job_log (job_id, attempt, worker, host) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (job_id, attempt) DO UPDATE SET worker = EXCLUDED.worker, "
                "host = EXCLUDED.host, began_at = now(), ended_at = NULL, outcome = NULL",
                (job_id, attempt, worker, socket.gethostname()),
            )
        else:
            conn.execute(
                "UPDATE cifar_core_job_log SET ended_at = now(), outcome = %s "
                "WHERE job_id = %s AND attempt = %s",
                (outcome, job_id, attempt),
            )


def load_data(state: dict, described: dict):
    """The job's data, loaded once per worker: the worker's --data-dir, else the folder the
    job was queued with; DataError when its pixels are not the ones the job was queued on."""
    from cifar_core.data import load_cifar10

    where = state.get("data_dir") or described.get("dir")
    key = (where, described["checksum"])
    if key not in state["data"]:
        data = load_cifar10(where)
        if data.checksum != described["checksum"]:
            raise DataError(
                f"the data at {where or 'keras.datasets'} is not the data the job was queued with "
                f"({described['source']}): pass that folder as worker --data-dir"
            )
        state["data"][key] = data
    return state["data"][key]


def train_queued(context, job: dict) -> str:
    """Train the job's run (or keep it, finished); returns how it ended."""
    import keras
    from procrastinate.exceptions import JobAborted

    from cifar_core import artifacts
    from cifar_core.config import TrainConfig
    from cifar_core.training.trainer import train_model

    state = context.additional_context["worker"]
    url, root, run_id = state["url"], Path(state["root"]), job["run_id"]
    attempt = context.job.attempts
    _log(url, context.job.id, attempt, worker=context.worker_name)
    outcome = "failed"
    try:
        while not artifacts.run_exists(root, run_id):
            state["say"](
                f"job {context.job.id}: training run {run_id} ({job['label']}), attempt {attempt + 1}"
            )
            try:
                state["running"] = run_id
                train_model(
                    TrainConfig.from_dict(job["config"]),
                    load_data(state, job["data"]),
                    root,
                    run_id=run_id,
                    lean=job["lean"],
                    export=job["export"],
                    origin=job["origin"],
                )
            except RunLockedError:  # a worker presumed dead is alive and training it: wait
                state["say"](f"job {context.job.id}: {run_id} is being trained by another process: waiting")
                time.sleep(LOCK_WAIT_S)
                continue
            outcome = "trained"
            return outcome
        outcome = "kept"
        return outcome
    except StopRequested as stopped:
        if state.get("shutting_down"):
            outcome = "given back: its worker was asked to stop"
            raise WorkerShutdown(outcome) from None
        outcome = "stopped"
        raise JobAborted(str(stopped)) from None
    except CifarError as error:
        outcome = f"failed: {error}"
        state["say"](f"job {context.job.id}: {run_id}: error: {error}")
        raise
    finally:
        state["running"] = None
        keras.backend.clear_session()
        _log(url, context.job.id, attempt, outcome=outcome[:500])
        state["done"].append((context.job.id, outcome))
