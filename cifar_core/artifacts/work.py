"""The work folder of a run being trained, ``<root>/work/<run_id>/``, and its lock.

Everything that lets a killed run resume lives here, under the names below; the folder
goes once the run folder is written.

    with training_lock(root, run_id) as work:   # RunLockedError if another process has it
        ...backup_dir(work, 1), best_weights(work, 1), history_file(work) ...
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from cifar_core.errors import RunLockedError

WORK = "work"
LOCK = "lock"
WORK_CONFIG = "config.json"  # the config and data checksum the checkpoints belong to
WORK_HISTORY = "history.csv"  # every epoch, every phase (becomes the run's history.csv)
PROGRESS = "progress.json"  # where the trainer is now (cifar_core/training/progress.py), rewritten <= 1/s
STOP_REQUEST = "stop-request"  # written by `status --stop` or the dashboard: stop after this epoch
ERROR = "error.txt"  # the last line of the error a trainer died of
LOCK_WAIT_S = 1.0  # a trainer retries a lock this long: a status probe holds it for microseconds


def work_dir(root: Path, run_id: str) -> Path:
    from cifar_core.artifacts.reading import check_run_id

    return Path(root) / WORK / check_run_id(run_id)


def history_file(work: Path) -> Path:
    return work / WORK_HISTORY


def read_history(work: Path):
    """The work folder's per-epoch history so far, a pandas DataFrame (a resumed epoch
    counts once; empty before the first epoch)."""
    import pandas as pd

    path = history_file(work)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(path).drop_duplicates("epoch", keep="last").reset_index(drop=True)


def progress_file(work: Path) -> Path:
    return work / PROGRESS


def stop_request(work: Path) -> Path:
    return work / STOP_REQUEST


def error_file(work: Path) -> Path:
    return work / ERROR


def work_folders(root: Path) -> list[Path]:
    """Every work folder under ``root/work``: runs (``work/<run>``) and tuning trials
    (``work/studies/<study>/<trial key>``), sorted."""
    base = Path(root) / WORK
    if not base.is_dir():
        return []
    folders = []
    for child in sorted(base.iterdir()):
        if child.name == "studies" and child.is_dir():
            folders += sorted(
                t for study in sorted(child.iterdir()) if study.is_dir() for t in study.iterdir()
            )
        elif child.is_dir():
            folders.append(child)
    return [f for f in folders if f.is_dir()]


def lock_holder(folder: Path) -> int | None:
    """The pid written by the live process that holds ``folder``'s lock, 0 if unreadable,
    or None when no process holds it (never trained, finished, or killed: the OS drops a
    dead process's lock). Probes with a shared lock held for microseconds; a trainer
    starting at that instant waits (``LOCK_WAIT_S``)."""
    import fcntl

    try:
        handle = open(Path(folder) / LOCK)
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def config_file(work: Path) -> Path:
    return work / WORK_CONFIG


def backup_dir(work: Path, phase: int) -> Path:
    """Keras BackupAndRestore checkpoints: the last finished epoch of ``phase``."""
    return work / f"backup-p{phase}"


def best_weights(work: Path, phase: int) -> Path:
    """The weights of the best validation epoch of ``phase``."""
    return work / f"best-p{phase}.weights.h5"


def phase_marker(work: Path, phase: int) -> Path:
    """A finished phase's record (its weights are ``phase_weights``)."""
    return work / f"phase{phase}.json"


def phase_weights(work: Path, phase: int) -> Path:
    return work / f"phase{phase}.weights.h5"


def activation_cache(work: Path, cut: int, part: str) -> Path:
    """Cached frozen-front activations (transfer runs): part is train, train-flipped or val."""
    return work / f"cache-ft{cut}-{part}.npy"


def stored_model_scratch(work: Path) -> Path:
    """Where the float32 model is saved before it is compacted into the run's model file."""
    return work / "model-float32.keras"


def clear(work: Path) -> None:
    """Delete a finished run's checkpoints (the lock goes once released)."""
    import shutil

    for child in work.iterdir():
        if child.name != LOCK:
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def training_lock(root: Path, run_id: str):
    """``lock_folder`` on the work folder of run ``run_id``."""
    return lock_folder(work_dir(root, run_id))


@contextlib.contextmanager
def lock_folder(folder: Path) -> Iterator[Path]:
    """Hold an exclusive lock on the work folder ``folder`` for as long as a trainer uses it.

    The OS drops the lock when the process dies (even by SIGKILL), so a killed run can be
    resumed at once, while a second live trainer of the same folder fails clearly.
    """
    import fcntl
    import time

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK, "a+")
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            handle.close()
            raise RunLockedError(
                f"{folder.name!r} is being trained by another process right now ({folder / LOCK})"
            ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield folder
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
