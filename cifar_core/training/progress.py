"""Where a training is now, written by its own process for anyone to read.

A trainer rewrites ``<work>/progress.json`` (``artifacts/work.py`` names it) at most once a
second: the step within the epoch, epoch x of N, images per second, training time so far
and the ETA, plus the batch the run belongs to (``run --all``, a ladder, a study). It also
obeys a stop request: a file ``stop-request`` in its work folder makes it stop at the end
of the current epoch, checkpoints written, so the same command resumes it.

    writer = ProgressWriter(work, run="cnn_bn-1a2b3c4d", kind="train", model="cnn_bn", epochs=30)
    writer.begin_phase(phase=1, phases=1, steps=352, batch_size=128)   # per phase
    writer.begin_epoch(0); writer.step(1); ...; writer.end_epoch(0, seconds)

``callbacks.Progress`` drives it from Keras; ``tracking``'s recorder from a notebook's
``fit``. ``status.py`` reads the files back. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cifar_core.artifacts import work as files

INTERVAL_S = 1.0  # the progress file is rewritten at most this often within an epoch
PACE_EPOCHS = 3  # the ETA's seconds per epoch: the median of the phase's last epochs (see eta_seconds)


def eta_seconds(
    epochs: int, epoch: int, step: int, steps: int, epoch_elapsed_s: float, epoch_times: list[float]
) -> float | None:
    """Seconds of training left: the rest of epoch ``epoch`` (0-based, ``step`` of ``steps``
    done, ``epoch_elapsed_s`` into it) plus the epochs after it up to ``epochs``.

    The pace per epoch is the median of the phase's last finished epochs, blended with this
    epoch's step pace in proportion to the share of its steps done: a run resumed on a
    quieter (or busier) machine, or one whose neighbour just finished, corrects its ETA
    within the epoch instead of carrying the old pace for three more. Before any epoch
    finished, this epoch's steps alone set the pace; None before its first step. Validation
    is inside an epoch's time."""
    if epoch >= epochs:
        return 0.0
    recent = [t for t in epoch_times[-PACE_EPOCHS:] if t > 0]
    current = epoch_elapsed_s / step * steps if step > 0 and steps > 0 else None
    if recent:
        per_epoch = statistics.median(recent)
        if current is not None:
            done = min(step / steps, 1.0)
            per_epoch = done * current + (1 - done) * per_epoch
    elif current is not None:
        per_epoch = current
    else:
        return None
    return max(per_epoch - epoch_elapsed_s, 0.0) + (epochs - epoch - 1) * per_epoch


def write_atomic(path: Path, data: dict) -> None:
    """Write JSON so that a reader sees the old file or the new one, never half of one."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(data, default=str))
    os.replace(temp, path)


# The batch this process is working through (run --all, a ladder, a study), if any.
_BATCH: dict | None = None


@contextlib.contextmanager
def batch(kind: str, name: str, total: int) -> Iterator[Batch]:
    """Mark every training this process starts inside the block as item k of ``total`` of a
    batch (``kind``: zoo, ladder or study); ``Batch.at`` says which item is training."""
    global _BATCH
    handle = Batch(kind, name, total)
    previous, _BATCH = _BATCH, handle.record
    try:
        yield handle
    finally:
        _BATCH = previous


@dataclass
class Batch:
    kind: str
    name: str
    total: int
    record: dict = field(default_factory=dict)

    def __post_init__(self):
        self.record.update(kind=self.kind, name=self.name, total=self.total, index=0, remaining=[])

    def at(self, index: int, remaining: list[dict] | None = None) -> None:
        """Item ``index`` (1-based) is training now; ``remaining``: the items after it, each
        ``{"label": ..., "model": ...}`` (the model lets a reader estimate its time)."""
        self.record.update(index=index, remaining=list(remaining or []))


def batch_at(index: int, remaining: list[dict] | None = None) -> None:
    """``Batch.at`` on the batch this process is in, if any (for code that cannot hold it)."""
    if _BATCH is not None:
        _BATCH.update(index=index, remaining=list(remaining or []))


def current_batch() -> dict | None:
    return dict(_BATCH) if _BATCH else None


def process_command() -> str | None:
    from cifar_core.runtime import command_line

    return command_line()


@dataclass
class ProgressWriter:
    """One training's progress file. ``epochs`` is the run's planned total (every phase);
    epochs count across phases as the history does."""

    work: Path
    run: str
    kind: str  # train, rung, trial or recorded
    model: str
    epochs: int
    command: str | None = None  # what resumes it (the command line of this process)
    resumable: bool = True
    interval_s: float = INTERVAL_S
    phase: int = 1
    phases: int = 1
    steps: int = 0
    batch_size: int = 0
    epoch: int = 0
    done_s: float = 0.0  # training seconds of the epochs finished before this one
    epoch_times: list[float] = field(default_factory=list)  # this phase's finished epochs
    stop_seen: bool = False

    def __post_init__(self):
        self.started_at = time.time()
        self._step = 0
        self._epoch_start = time.perf_counter()
        self._written = 0.0
        self.batch = current_batch()
        self.host = socket.gethostname()
        self.command = self.command if self.command is not None else process_command()

    def begin_phase(self, phase: int, phases: int, steps: int, batch_size: int, history=None) -> None:
        """A phase starts (or resumes): ``history`` (a DataFrame of the epochs done so far)
        gives the time already spent and the pace of the phase's earlier epochs."""
        self.phase, self.phases, self.steps, self.batch_size = phase, phases, steps, batch_size
        self.epoch_times = []
        if history is not None and len(history) and "epoch_time_s" in history:
            self.done_s = float(history["epoch_time_s"].sum())
            if "phase" in history:
                mine = history[history["phase"] == phase]
                self.epoch_times = [float(t) for t in mine["epoch_time_s"]]
        self.write("training", force=True)

    def begin_epoch(self, epoch: int) -> None:
        self.epoch, self._step = epoch, 0
        self._epoch_start = time.perf_counter()
        self.write("training", force=True)

    def step(self, step: int) -> None:
        self._step = step
        if time.perf_counter() - self._written >= self.interval_s:
            self.write("training")

    def validating(self) -> None:
        self.write("validating", force=True)

    def end_epoch(self, epoch: int, seconds: float) -> bool:
        """Epoch ``epoch`` finished in ``seconds``; True when a stop was requested (the
        caller stops training after this epoch)."""
        self.epoch_times.append(seconds)
        self.done_s += seconds
        self.epoch, self._step = epoch + 1, 0
        self._epoch_start = time.perf_counter()
        self.stop_seen = files.stop_request(self.work).exists()
        self.write("stopping" if self.stop_seen else "training", force=True, between_epochs=True)
        return self.stop_seen

    def eta_s(self, between_epochs: bool = False) -> float | None:
        elapsed = 0.0 if between_epochs else time.perf_counter() - self._epoch_start
        return eta_seconds(self.epochs, self.epoch, self._step, self.steps, elapsed, self.epoch_times)

    def snapshot(self, stage: str, between_epochs: bool = False) -> dict:
        elapsed = 0.0 if between_epochs else time.perf_counter() - self._epoch_start
        rate = None
        if self._step and elapsed > 0 and self.batch_size:
            rate = self._step * self.batch_size / elapsed
        elif self.epoch_times and self.steps and self.batch_size:
            rate = self.steps * self.batch_size / self.epoch_times[-1]
        return {
            "run": self.run,
            "kind": self.kind,
            "model": self.model,
            "pid": os.getpid(),
            "host": self.host,
            "command": self.command,
            "resumable": self.resumable,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "stage": stage,
            "phase": self.phase,
            "phases": self.phases,
            "epoch": self.epoch,  # 0-based: the epoch training now (= epochs done)
            "epochs": self.epochs,
            "step": self._step,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "images_per_s": rate,
            "train_s": self.done_s + elapsed,
            "eta_s": self.eta_s(between_epochs),
            "batch": self.batch,
        }

    def write(self, stage: str, force: bool = False, between_epochs: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._written < self.interval_s:
            return
        self._written = now
        with contextlib.suppress(OSError):  # a progress file is never worth failing a training
            write_atomic(files.progress_file(self.work), self.snapshot(stage, between_epochs))

    def eta_line(self) -> str:
        """What ``train`` prints after each epoch line."""
        eta = self.eta_s(between_epochs=True)
        if eta is None:
            return ""
        finish = time.strftime("%H:%M", time.localtime(time.time() + eta))
        where = f"epoch {min(self.epoch, self.epochs)}/{self.epochs} done"
        if self.stop_seen:
            return f"{where}: stopping, as requested (the same command resumes it)"
        return f"{where}, ETA {format_duration(eta)} (about {finish})" if eta > 0 else f"{where}"


def format_duration(seconds: float | None) -> str:
    """``1 h 05 min``, ``12 min 30 s``, ``45 s``; an em dash for unknown."""
    if seconds is None or seconds != seconds:
        return "—"
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def request_stop(work: Path) -> Path:
    """Ask the trainer of ``work`` to stop at the end of its epoch (a file it checks)."""
    path = files.stop_request(work)
    path.write_text(f"requested at {time.strftime('%Y-%m-%d %H:%M:%S')} by pid {os.getpid()}\n")
    return path


def record_failure(work: Path, error: BaseException) -> None:
    """Keep the last line of the error a trainer dies of, for the status page."""
    line = (str(error).strip().splitlines() or [""])[-1]
    with contextlib.suppress(OSError):
        files.error_file(work).write_text(f"{type(error).__name__}: {line}"[:500] + "\n")
