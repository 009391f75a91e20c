"""Where a study's trials live: Optuna's journal file on one machine, PostgreSQL on several.

    open_study(root, "cnn_bn-tune")                          # journal: studies/<name>/journal.log
    open_study(root, "cnn_bn-tune", url="postgresql://...")  # RDBStorage on that server

A study made with a URL records it, without its password, in its ``study.json``
(``"storage"``); every later ``tune``, ``--show`` and the Tuning page then open the same
server (the password from ``$CIFAR_DB`` when it names that server, else from ``PGPASSWORD``
or ``~/.pgpass``). On PostgreSQL each trial sends a heartbeat; a trial silent for two
heartbeats is failed by the next process that starts a trial, and Optuna's
``RetryHeartbeatStaleTrialCallback`` (``RetryFailedTrialCallback`` before Optuna 4.9) queues
it again with the same values: another worker trains it, resuming from its checkpoints in
the shared artifacts root. A beat the server misses (a restart) is skipped; a server gone
for longer ends ``tune`` with one line, and the same command carries on.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from cifar_core import database
from cifar_core.artifacts import studies
from cifar_core.errors import ArtifactError

PRUNER = {"kind": "median", "n_startup_trials": 5, "n_warmup_steps": 2}
HEARTBEAT_S = 60  # a worker's trial is presumed dead after two missed beats
MAX_RETRY = 3  # a trial killed more often than this stays failed


def without_password(url: str) -> str:
    """The URL as ``study.json`` keeps it: libpq form, no password."""
    parts = urlsplit(database.libpq_url(url))
    host = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}"))


def stored_url(root: Path, name: str) -> str | None:
    """The server a stored study lives on (None: its journal file), with the password of
    ``$CIFAR_DB`` when that names the same server."""
    path = studies.study_dir(root, name) / studies.STUDY_INFO
    if not path.is_file():
        return None
    stored = studies.read_study_info(root, name).get("storage")
    if not stored:
        return None
    env = database.url_from(None)
    if env and without_password(env) == stored:
        return env
    return stored


def _storage(root: Path, name: str, url: str | None, heartbeat: float = HEARTBEAT_S):
    if url is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = studies.journal_path(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    warnings.filterwarnings("ignore", category=ExperimentalWarning)  # heartbeats: years old, still "new"
    database.check(url)  # one line naming the server and the fault, before SQLAlchemy's

    class Storage(RDBStorage):
        def record_heartbeat(self, trial_id: int) -> None:
            """A beat the server missed (restarted, unreachable) is skipped, not fatal: Optuna's
            heartbeat thread would die on it and leave the trial silent until it ends."""
            from optuna.exceptions import StorageInternalError
            from sqlalchemy.exc import SQLAlchemyError

            try:
                super().record_heartbeat(trial_id)
            except (StorageInternalError, SQLAlchemyError) as error:
                print(
                    f"heartbeat of trial {trial_id} missed: {database.reason(error.__cause__ or error)}",
                    flush=True,
                )

    with database.exclusive(url, "cifar_core optuna schema"):
        return Storage(
            database.sqlalchemy_url(url),
            engine_kwargs={"pool_pre_ping": True},  # a restarted server: reconnect, do not fail
            heartbeat_interval=int(heartbeat),
            grace_period=int(2 * heartbeat),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )


def open_study(root: Path, name: str, seed: int = 0, url: str | None = None, heartbeat: float = HEARTBEAT_S):
    """The study ``name`` (created if new): TPE sampler, median pruner, maximising; on the
    server ``url``, else where its ``study.json`` says, else in its journal file."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name,
        storage=_storage(root, name, url or stored_url(root, name), heartbeat),
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=PRUNER["n_startup_trials"], n_warmup_steps=PRUNER["n_warmup_steps"]
        ),
        direction="maximize",
        load_if_exists=True,
    )


def load_study(root: Path, name: str, url: str | None = None):
    """The stored study ``name`` for reading (the dashboard, ``--show``, ``--retrain``; on the
    server ``url``, else where its ``study.json`` says): unlike ``open_study`` it adds no study.
    ArtifactError if it has no trials' store or not this study. On a new database it takes
    its turn creating the tables, as ``open_study`` does, while ``tune`` processes start."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = url or stored_url(root, name)
    if url is None and not studies.journal_path(root, name).is_file():
        raise ArtifactError(f"study {name!r} has no journal file: start it with `tune --model ...`")
    storage = _storage(root, name, url)  # a server that cannot be used: DatabaseError
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except (KeyError, ValueError) as error:  # a store without this study, or not a journal
        raise ArtifactError(f"study {name!r}: its trials cannot be read ({error})") from error
