"""Every training under an artifacts root: what ``status`` prints and the Training now page draws.

    found, warnings = trainings(root)           # one Training per work folder
    status_frame(found)                         # the table
    stop(root, found[0].key)                    # ask it to stop after its epoch

A work folder (``artifacts/work/<run>/``, ``artifacts/work/studies/<study>/<trial>/``) is
*running* while a live process holds its lock, else *stopped* (resumable when checkpoints
are there: the command that resumes it is in its progress file) or *failed* (the trainer
left the last line of its error). Everything is read from files the trainer writes
(``progress.py``); nothing here imports TensorFlow, and an unreadable file is a warning
naming the folder, never an exception.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cifar_core.artifacts import work as files
from cifar_core.errors import ArtifactError
from cifar_core.training.progress import PACE_EPOCHS, format_duration

RUNNING, STOPPED, FAILED = "running", "stopped", "failed"


@dataclass
class Training:
    key: str  # the work folder under root/work: "cnn_bn-1a2b3c4d", "studies/s/3f2e..."
    folder: Path
    state: str  # running, stopped or failed
    resumable: bool
    run: str
    kind: str = "train"  # train, rung, trial, recorded
    model: str = "?"
    pid: int | None = None
    host: str | None = None
    stage: str = ""  # training, validating, stopping, recording
    phase: int | None = None
    phases: int | None = None
    epoch: int = 0  # epochs done (0-based index of the one training now)
    epochs: int | None = None
    step: int = 0
    steps: int = 0
    images_per_s: float | None = None
    train_s: float | None = None
    eta_s: float | None = None
    batch: dict | None = None
    batch_eta_s: float | None = None
    command: str | None = None
    error: str | None = None
    stop_requested: bool = False
    cpu_percent: float | None = None
    memory_mb: float | None = None
    updated_s_ago: float | None = None
    history: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def label(self) -> str:
        """How the state reads in a table."""
        if self.state == RUNNING:
            return "running, stopping after this epoch" if self.stop_requested else RUNNING
        if self.state == FAILED:
            return FAILED
        return "stopped, resumable" if self.resumable else STOPPED

    @property
    def next_epoch(self) -> int:
        """The epoch training now, 1-based: a stop takes effect at its end."""
        return min(self.epoch + 1, self.epochs or self.epoch + 1)

    @property
    def resume_hint(self) -> str:
        if self.kind == "recorded":
            return "run your notebook or script again (a recorded fit starts over)"
        return self.command or "start the command that trained it again (it resumes)"


def trainings(root: Path) -> tuple[list[Training], list[str]]:
    """Every work folder under ``root`` as a Training, and a warning per unreadable file."""
    base = Path(root) / files.WORK
    found, warnings = [], []
    for folder in files.work_folders(root):
        training = _read(folder, folder.relative_to(base).as_posix(), warnings)
        if training is not None:
            found.append(training)
    if any(t.batch for t in found):
        _batch_etas(root, found)
    return found, warnings


def _read_json(path: Path, key: str, warnings: list[str]) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as error:
        warnings.append(f"{key}: {path.name} is unreadable ({type(error).__name__}); shown without it")
        return {}


_HISTORIES: dict[Path, tuple[tuple[int, int], pd.DataFrame]] = {}  # re-read only when changed


def _history(folder: Path, key: str, warnings: list[str]) -> pd.DataFrame:
    path = files.history_file(folder)
    try:
        stat = path.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
        cached = _HISTORIES.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        history = files.read_history(folder)
    except FileNotFoundError:
        return pd.DataFrame()  # the run finished and its folder went while we read
    except Exception as error:  # pandas raises many kinds for a damaged CSV
        warnings.append(f"{key}: history.csv is unreadable ({type(error).__name__}); no curves")
        return pd.DataFrame()
    wanted = {"epoch", "accuracy", "loss"}
    if len(history) and not wanted <= set(history.columns):
        warnings.append(f"{key}: history.csv lacks {', '.join(sorted(wanted - set(history.columns)))}")
        return pd.DataFrame()
    if len(_HISTORIES) > 256:
        _HISTORIES.clear()
    _HISTORIES[path] = (signature, history)
    return history


def _read(folder: Path, key: str, warnings: list[str]) -> Training | None:
    pid = files.lock_holder(folder)
    info = _read_json(files.progress_file(folder), key, warnings)
    saved = _read_json(files.config_file(folder), key, warnings).get("config") or {}
    history = _history(folder, key, warnings)
    if not info and not saved and not len(history) and pid is None:
        return None  # an empty folder (a finished run's, being removed)
    error = None
    if pid is None and files.error_file(folder).exists():
        try:
            error = files.error_file(folder).read_text().strip() or "failed"
        except OSError:
            error = "failed"
    checkpoints = any(folder.glob("backup-p*")) or any(folder.glob("phase*.json")) or len(history) > 0
    state = RUNNING if pid is not None else (FAILED if error else STOPPED)
    epochs_done = int(history["epoch"].max()) + 1 if len(history) else 0
    training = Training(
        key=key,
        folder=folder,
        state=state,
        resumable=bool(checkpoints and info.get("resumable", True)),
        run=info.get("run") or folder.name,
        kind=info.get("kind") or ("trial" if key.startswith("studies/") else "train"),
        model=info.get("model") or saved.get("model") or "?",
        pid=pid or info.get("pid"),  # the lock's, else the last one the progress file named
        host=info.get("host"),
        stage=info.get("stage", "") if pid is not None else "",
        phase=info.get("phase"),
        phases=info.get("phases"),
        epoch=epochs_done,
        epochs=info.get("epochs") or saved.get("epochs"),
        step=int(info.get("step") or 0) if pid is not None else 0,
        steps=int(info.get("steps") or 0),
        images_per_s=info.get("images_per_s"),
        train_s=float(history["epoch_time_s"].sum()) if "epoch_time_s" in history else None,
        command=info.get("command"),
        error=error,
        stop_requested=files.stop_request(folder).exists(),
        batch=info.get("batch") if pid is not None else None,
        history=history,
    )
    if pid is not None and info:
        _live(training, info)
    elif pid is not None and len(history) and training.epochs and "epoch_time_s" in history:
        _pace_from_history(training, folder)
    if pid and training.host in (None, socket.gethostname()):
        training.cpu_percent, training.memory_mb = process_usage(pid)
    return training


def _live(training: Training, info: dict) -> None:
    """The moving parts of a running training: where it is now, ETA, CPU and memory."""
    ago = max(time.time() - float(info.get("updated_at") or time.time()), 0.0)
    training.updated_s_ago = ago
    training.epoch = max(training.epoch, int(info.get("epoch") or 0))
    moving = info.get("stage") in ("training", "validating")
    if info.get("train_s") is not None:
        training.train_s = float(info["train_s"]) + (ago if moving else 0.0)
    if info.get("eta_s") is not None:
        training.eta_s = max(float(info["eta_s"]) - (ago if moving else 0.0), 0.0)


def _pace_from_history(training: Training, folder: Path) -> None:
    """ETA of a trainer that writes no progress file (started by an older version): the
    epochs left at the pace of its last ones, less the time since its last epoch ended."""
    recent = [float(t) for t in training.history["epoch_time_s"].tail(PACE_EPOCHS) if t > 0]
    if not recent:
        return
    try:
        since = max(time.time() - files.history_file(folder).stat().st_mtime, 0.0)
    except OSError:
        return
    per_epoch = statistics.median(recent)
    left = max(int(training.epochs) - training.epoch, 0)
    training.eta_s = max(left * per_epoch - min(since, per_epoch), 0.0)
    training.train_s = (training.train_s or 0.0) + since


_PROCESSES: dict[int, object] = {}  # psutil handles kept between refreshes (CPU % needs two looks)


def process_usage(pid: int) -> tuple[float | None, float | None]:
    """(CPU %, resident memory in MB) of process ``pid``: CPU since the last call for it
    (its lifetime average the first time); (None, None) when it cannot be read."""
    try:
        import psutil
    except ImportError:
        return None, None
    try:
        process = _PROCESSES.get(pid)
        if process is None or not process.is_running():
            process = _PROCESSES[pid] = psutil.Process(pid)
            with process.oneshot():
                times = process.cpu_times()
                lifetime = max(time.time() - process.create_time(), 1e-3)
                cpu = 100.0 * (times.user + times.system) / lifetime
                process.cpu_percent(None)  # primes the next call
                return cpu, process.memory_info().rss / 2**20
        with process.oneshot():
            return process.cpu_percent(None), process.memory_info().rss / 2**20
    except Exception:  # gone, or not ours to read
        _PROCESSES.pop(pid, None)
        return None, None


def _finished_times(root: Path) -> dict[str, list[float]]:
    """Train seconds of the finished runs, by model (what the rest of a batch will take)."""
    from cifar_core.artifacts import reading as run_files

    times: dict[str, list[float]] = {}
    for run_id in run_files.list_runs(root):
        folder = Path(root) / run_files.RUNS / run_id
        try:
            model = json.loads((folder / run_files.MANIFEST).read_text())["model"]
            seconds = json.loads((folder / run_files.METRICS).read_text()).get("train_time_s")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(seconds, (int, float)) and seconds > 0:
            times.setdefault(model, []).append(float(seconds))
    return times


def _batch_etas(root: Path, found: list[Training]) -> None:
    """A batch's ETA: this item's, plus each later item at the median time of the finished
    runs of its model, or this item's projected total when none is known (trials, rungs)."""
    known = _finished_times(root)
    for t in found:
        if not t.batch or t.eta_s is None:
            continue
        this_total = (t.train_s or 0.0) + t.eta_s
        later = [
            statistics.median(known[item["model"]]) if item.get("model") in known else this_total
            for item in t.batch.get("remaining") or []
        ]
        if not later and t.batch.get("kind") == "study":  # trials left: like this one
            later = [this_total] * max(int(t.batch.get("total", 0)) - int(t.batch.get("index", 0)), 0)
        t.batch_eta_s = t.eta_s + sum(later)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}%"


def batch_text(training: Training) -> str:
    b = training.batch
    if not b:
        return ""
    return f"{b.get('kind')} {b.get('name')}: {b.get('index')} of {b.get('total')}"


def status_frame(found: list[Training]) -> pd.DataFrame:
    """One row per training, as ``status`` prints it and the page's table shows it."""
    rows = []
    for t in found:
        epoch = f"{t.next_epoch if t.state == RUNNING else t.epoch}/{t.epochs or '?'}"
        rows.append(
            {
                "training": t.run,
                "kind": t.kind,
                "state": t.label,
                "model": t.model,
                "phase": f"{t.phase}/{t.phases}" if t.phase and t.phases and t.phases > 1 else "",
                "epoch": epoch,
                "step": f"{t.step}/{t.steps}" if t.state == RUNNING and t.steps else "",
                "images/s": f"{t.images_per_s:,.0f}" if t.images_per_s and t.state == RUNNING else "",
                "elapsed": format_duration(t.train_s) if t.train_s is not None else "—",
                "ETA": format_duration(t.eta_s) if t.state == RUNNING else "",
                "batch": batch_text(t),
                "batch ETA": format_duration(t.batch_eta_s) if t.batch_eta_s is not None else "",
                "process": f"{t.pid} on {t.host or '?'}" if t.state == RUNNING else "",
                "CPU": _percent(t.cpu_percent) if t.state == RUNNING else "",
                "memory": f"{t.memory_mb:,.0f} MB" if t.memory_mb is not None and t.state == RUNNING else "",
            }
        )
    return pd.DataFrame(rows)


def find(root: Path, key: str) -> Training:
    """The training whose work folder is ``key`` under this root (ArtifactError if none)."""
    found, _ = trainings(root)
    for t in found:
        if t.key == key or t.run == key:
            return t
    known = ", ".join(t.key for t in found) or "none"
    raise ArtifactError(f"no training {key!r} under {Path(root) / files.WORK} (there: {known})")


def stop(root: Path, key: str) -> Training:
    """Ask the running training ``key`` (a folder of this root's, nothing else) to stop at
    the end of its current epoch. Returns it; ArtifactError if it is not running."""
    from cifar_core.training.progress import request_stop

    training = find(root, key)
    base = (Path(root) / files.WORK).resolve()
    if base not in training.folder.resolve().parents:
        raise ArtifactError(f"{training.folder} is not under {base}")
    if training.state != RUNNING:
        raise ArtifactError(f"{training.run} is not running ({training.label})")
    request_stop(training.folder)
    training.stop_requested = True
    return training


def reference_run(runs: list, model: str):
    """The best finished run (test accuracy) of ``model`` among ``runs``, or None: what a
    training in progress is drawn against."""
    same = [r for r in runs if r.model == model and len(r.history)]
    return max(same, key=lambda r: r.metrics["test"]["accuracy"]) if same else None
