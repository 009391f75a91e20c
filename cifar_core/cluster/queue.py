"""The job queue on PostgreSQL: one job per run, trained by ``worker`` processes anywhere.

    queue.enqueue(url, jobs, data, root)    # run --queue, ladder run --queue
    queue.jobs_frame(url)                   # status, the Training now page
    queue.cancel(url, "fast-1a2b3c4d")      # a queued job: cancelled; a running one: "running"

procrastinate, not a table of our own polled by hand: it claims jobs with ``FOR UPDATE SKIP
LOCKED``, keeps a heartbeat per worker and finds the jobs of workers that went silent
(``get_stalled_jobs``, ``retry_job``), has locks (one run never trains twice at once) and
queueing locks (one run is never queued twice), and needs no server beside the PostgreSQL
that already holds the studies. A job is a run: its arguments are the run's config and id,
so a finished run is skipped and a half-done one resumes from its checkpoints.

Beside procrastinate's schema the workbench keeps two tables: ``cifar_core_meta`` (which
artifacts root the queue writes to) and ``cifar_core_job_log`` (each attempt: worker, host,
when the training began and ended), for ``status`` and ``benchmark --workers``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cifar_core import database
from cifar_core.cluster.tasks import QUEUE, declare
from cifar_core.errors import ConfigError

OWN_TABLES = """
CREATE TABLE IF NOT EXISTS cifar_core_meta (key text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS cifar_core_job_log (
    job_id bigint NOT NULL, attempt integer NOT NULL, worker text NOT NULL, host text NOT NULL,
    began_at timestamptz NOT NULL DEFAULT now(), ended_at timestamptz, outcome text,
    PRIMARY KEY (job_id, attempt)
);
"""
STATES = {  # procrastinate's status -> the word the pages use
    "todo": "queued",
    "doing": "running",
    "succeeded": "done",
    "failed": "failed",
    "cancelled": "cancelled",
    "aborting": "stopping",
    "aborted": "stopped",
}


def make_app(url: str):
    import procrastinate

    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=database.libpq_url(url)))


def prepare(url: str) -> None:
    """procrastinate's schema and the workbench's tables, applied once per database."""
    from procrastinate.schema import SchemaManager

    with database.exclusive(url, "cifar_core queue schema") as conn:  # two first users set it up once
        if conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0] is None:
            conn.execute(SchemaManager.get_schema())
        conn.execute(OWN_TABLES)


def queue_root(url: str) -> dict | None:
    """The mark of the artifacts root this queue writes to (None before the first job)."""
    with database.connect(url) as conn:
        row = conn.execute("SELECT value FROM cifar_core_meta WHERE key = 'artifacts_root'").fetchone()
    return row[0] if row else None


def claim_root(url: str, root: Path) -> dict:
    """Tie the queue to ``root`` (marked if new); ConfigError if it writes to another one."""
    from psycopg.types.json import Jsonb

    from cifar_core.artifacts.rootmark import root_mark

    mark = root_mark(root, create=True)
    with database.connect(url) as conn:
        conn.execute(
            "INSERT INTO cifar_core_meta (key, value) VALUES ('artifacts_root', %s) ON CONFLICT DO NOTHING",
            (Jsonb(mark),),
        )
    check_root(url, root)
    return mark


def check_root(url: str, root: Path) -> None:
    """ConfigError, one line, unless ``root`` is the artifacts root the queue writes to."""
    from cifar_core.artifacts.rootmark import root_mark

    queued = queue_root(url)
    if queued is None:
        raise ConfigError(
            f"the queue at {database.where(url)} has no jobs yet: enqueue some with run --queue"
        )
    mine = root_mark(root)
    if mine is None or mine["id"] != queued["id"]:
        raise ConfigError(
            f"artifacts root {root} is not the queue's (it writes to {queued['path']} made on "
            f"{queued['host']}): mount that folder and pass it as --artifacts-dir"
        )


def payload(job, run_id: str, data, data_dir: str | None, export: bool) -> dict:
    """A job's arguments: everything a worker needs to train the run, as JSON."""
    return {
        "run_id": run_id,
        "label": job.label,
        "config": job.config.to_dict(),
        "lean": job.lean,
        "origin": job.origin,
        "export": export,
        "data": {"dir": data_dir, "checksum": data.checksum, "source": data.source},
    }


def enqueue(
    url: str, jobs: list, data, root: Path, data_dir: str | None, export: bool = True, say=print
) -> int:
    """Queue one job per run not finished in ``root``; returns how many were queued. A run
    already queued (and not started) is said and skipped."""
    from procrastinate.exceptions import AlreadyEnqueued

    from cifar_core.models.builderfile import is_builder_ref
    from cifar_core.training.jobs import finished_run
    from cifar_core.training.trainer import default_run_id

    own = sorted({j.config.model for j in jobs if is_builder_ref(j.config.model)})
    if own:
        raise ConfigError(
            f"--queue trains zoo models only: {', '.join(own)} is code of yours (train it here)"
        )
    database.check(url)
    prepare(url)
    claim_root(url, root)
    data_dir = str(Path(data_dir).resolve()) if data_dir else None
    app = make_app(url)
    task = declare(app)
    queued = 0
    with app.open():
        for i, job in enumerate(jobs, 1):
            where = f"[{i}/{len(jobs)}] {job.label}"
            finished = finished_run(job, data, root)
            if finished:
                say(f"{where}: finished run {finished} kept")
                continue
            run_id = job.run_id or default_run_id(job.config, data)
            try:
                job_id = task.configure(lock=run_id, queueing_lock=run_id).defer(
                    **payload(job, run_id, data, data_dir, export)
                )
            except AlreadyEnqueued:
                say(f"{where}: run {run_id} is queued already")
                continue
            say(f"{where}: queued run {run_id} (job {job_id})")
            queued += 1
    return queued


JOBS_SQL = """
SELECT j.id AS job, j.queueing_lock AS run_id, j.args->>'label' AS label, j.status AS state,
       j.attempts, l.worker, l.host, l.began_at, l.ended_at, l.outcome,
       (SELECT min(e.at) FROM procrastinate_events e WHERE e.job_id = j.id AND e.type = 'deferred')
         AS queued_at
  FROM procrastinate_jobs j
  LEFT JOIN LATERAL (SELECT * FROM cifar_core_job_log g WHERE g.job_id = j.id
                     ORDER BY g.attempt DESC LIMIT 1) l ON true
 WHERE j.queue_name = %s
 ORDER BY j.id
"""


def jobs_frame(url: str) -> pd.DataFrame:
    """One row per job: job, run_id, label, state (queued, running, done, failed, cancelled,
    stopped), attempts, worker, host and times; empty before the queue is set up."""
    with database.connect(url) as conn:
        if conn.execute("SELECT to_regclass('cifar_core_job_log')").fetchone()[0] is None:
            return pd.DataFrame(columns=["job", "run_id", "label", "state", "attempts", "worker", "host"])
        cursor = conn.execute(JOBS_SQL, (QUEUE,))
        frame = pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
    frame["state"] = frame["state"].map(STATES).fillna(frame["state"])
    return frame


def pending(url: str) -> dict[str, int]:
    """How many jobs are queued and running right now."""
    with database.connect(url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM procrastinate_jobs WHERE queue_name = %s GROUP BY status", (QUEUE,)
        ).fetchall()
    counts = {STATES.get(status, status): n for status, n in rows}
    return {"queued": counts.get("queued", 0), "running": counts.get("running", 0)}


def cancel(url: str, key: str) -> tuple[str, str]:
    """Cancel the queued job of run ``key`` (or job number ``key``): ("cancelled", run id);
    ("running", run id) when a worker is training it (the caller asks the run to stop)."""
    frame = jobs_frame(url)
    found = frame[(frame["run_id"] == key) | (frame["job"].astype(str) == key)]
    found = found[found["state"].isin(["queued", "running"])]
    if found.empty:
        raise ConfigError(f"no queued or running job for {key!r} at {database.where(url)}")
    row = found.iloc[-1]
    if row["state"] == "running":
        return "running", row["run_id"]
    app = make_app(url)
    with app.open():
        if not app.job_manager.cancel_job_by_id(int(row["job"])):
            return "running", row["run_id"]  # a worker claimed it a moment ago
    return "cancelled", row["run_id"]


TIMINGS_SQL = """
SELECT l.job_id AS job, l.worker, l.began_at, l.ended_at,
       (SELECT max(e.at) FROM procrastinate_events e
         WHERE e.job_id = l.job_id AND e.type = 'started' AND e.at <= l.began_at) AS claimed_at,
       (SELECT min(e.at) FROM procrastinate_events e
         WHERE e.job_id = l.job_id AND e.type = 'succeeded' AND e.at >= l.ended_at) AS recorded_at
  FROM cifar_core_job_log l
 WHERE l.outcome = 'trained'
 ORDER BY l.job_id
"""


def job_timings(url: str) -> pd.DataFrame:
    """Per trained job: the queue's overhead around it, in ms. ``claim_to_start_ms``: from the
    worker claiming the job to the training beginning; ``end_to_record_ms``: from the training
    ending to the job recorded as done; and ``train_s`` between them."""
    with database.connect(url) as conn:
        cursor = conn.execute(TIMINGS_SQL)
        frame = pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
    for column in ("began_at", "ended_at", "claimed_at", "recorded_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["claim_to_start_ms"] = (frame["began_at"] - frame["claimed_at"]).dt.total_seconds() * 1000
    frame["end_to_record_ms"] = (frame["recorded_at"] - frame["ended_at"]).dt.total_seconds() * 1000
    frame["train_s"] = (frame["ended_at"] - frame["began_at"]).dt.total_seconds()
    return frame
