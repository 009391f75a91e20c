"""``worker``: take jobs from the queue one at a time until it is empty (or, ``wait``, forever).

    done = work(url, root, data_dir=None, wait=False)

Before each round the worker gives back the jobs of workers whose heartbeat stopped (a
machine that went down, a SIGKILLed process): procrastinate's ``get_stalled_jobs``, then
``retry_job``, up to ``MAX_ATTEMPTS`` attempts per job. It then runs procrastinate's own
worker until it has caught up with the queue. Without ``wait`` it leaves when nothing is
queued and no other worker is training (a job still held by a live worker may yet be given
back, so it waits for those); with ``wait`` it polls for new jobs until stopped.

A server that goes away (restarted, network down) ends the round with one line; the worker
then tries again every ``poll`` seconds and goes on when the server is back: a job cut off
by it is given back as stalled and resumes from its checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from pathlib import Path

from cifar_core import database
from cifar_core.cluster import queue
from cifar_core.cluster.tasks import QUEUE, declare

HEARTBEAT_S = 10.0  # procrastinate's default
MAX_ATTEMPTS = 3  # a job whose worker died this often stays failed


async def _recover(app, stalled_after: float) -> list[tuple[int, str]]:
    """Give back (or fail, past MAX_ATTEMPTS) the jobs of workers silent for ``stalled_after`` s."""
    from procrastinate.jobs import Status

    said = []
    async with app.open_async():
        for job in await app.job_manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=stalled_after):
            if job.attempts + 1 >= MAX_ATTEMPTS:
                await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
                said.append((job.id, f"failed: its worker died {job.attempts + 1} times"))
            else:
                await app.job_manager.retry_job(job)
                said.append((job.id, "given back: its worker stopped sending heartbeats"))
    return said


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def work(
    url: str,
    root: Path,
    data_dir: str | None = None,
    wait: bool = False,
    heartbeat: float = HEARTBEAT_S,
    poll: float = 5.0,
    say=print,
) -> list[tuple[int, str]]:
    """Train queued jobs in ``root`` until the queue is done; returns (job, outcome) pairs.
    DatabaseError or ConfigError (one line, no job taken) for a server that cannot be used or
    an artifacts root that is not the queue's."""
    database.check(url)
    queue.prepare(url)
    queue.check_root(url, root)
    app = make_worker_app(url)
    state = {"url": url, "root": str(root), "data_dir": data_dir, "data": {}, "done": [], "say": say}
    one_line_logs(state)
    stalled_after = 3 * heartbeat
    name = worker_name()
    say(f"worker {name}: jobs from {database.where(url)}, runs into {root}")
    while True:
        try:
            for job_id, what in asyncio.run(_recover(app, stalled_after)):
                say(f"job {job_id}: {what}")
            app.run_worker(
                queues=[QUEUE],
                wait=False,
                concurrency=1,  # a training uses every core: one job at a time
                name=name,
                additional_context={"worker": state},  # procrastinate copies the outer dict per job
                update_heartbeat_interval=heartbeat,
                stalled_worker_timeout=stalled_after,
                fetch_job_polling_interval=poll,
                listen_notify=False,
            )
            if state.get("shutting_down"):
                say(f"worker {name}: stopped as asked; a job it held is back in the queue")
                return state["done"]
            counts = queue.pending(url)
        except (OSError, database.DatabaseError, _psycopg_errors()) as error:
            say(
                f"worker {name}: lost {database.where(url)} ({database.reason(error)}): "
                f"retrying in {poll:.0f} s"
            )
            time.sleep(poll)
            continue
        if counts["queued"]:
            continue
        if not counts["running"] and not wait:
            return state["done"]
        time.sleep(poll)


class _OneLine(logging.Formatter):
    def formatException(self, exc_info) -> str:  # noqa: N802  (logging's name)
        return ""

    def format(self, record) -> str:
        record.exc_text = ""
        return super().format(record).strip()


class _Stops(logging.Handler):
    """Tells a stop asked by a signal (procrastinate's "stopping_worker" with no failed side
    task before it: Ctrl-C, SIGTERM) from one after a lost server, and asks the training under
    way to stop at the end of its epoch (its job then goes back to the queue)."""

    def __init__(self, state: dict):
        super().__init__(logging.INFO)
        self.state = state

    def emit(self, record) -> None:
        action = getattr(record, "action", None)
        if action == "side_task_failed":
            self.state["lost_server"] = True
        elif action == "stopping_worker" and not self.state.pop("lost_server", False):
            self.state["shutting_down"] = True
            if self.state.get("running"):
                from cifar_core.errors import ArtifactError
                from cifar_core.training import status

                try:
                    status.stop(Path(self.state["root"]), self.state["running"])
                except ArtifactError:  # it is recording the run: that ends on its own
                    pass


def one_line_logs(state: dict) -> None:
    """procrastinate's warnings and errors (a lost server, a failed job) as one line each on
    stderr, without their tracebacks; its info lines stay quiet but are watched for stops."""
    logger = logging.getLogger("procrastinate")
    for old in [h for h in logger.handlers if isinstance(h, _Stops) or isinstance(h.formatter, _OneLine)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_OneLine("procrastinate: %(message)s"))
    logger.addHandler(handler)
    logger.addHandler(_Stops(state))
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _psycopg_errors():
    import psycopg
    from procrastinate.exceptions import ConnectorException

    return (psycopg.Error, ConnectorException)


def make_worker_app(url: str):
    app = queue.make_app(url)
    declare(app)
    return app
