"""What one look at the trainings under way costs: simulated trainings and the engine's read.

A simulated training does what a real one does to its work folder (the lock, the progress
file, a history row per epoch, stop requests) without TensorFlow, so that several can run at
once on a small machine. ``refresh_cost`` runs some in threads of this process and times
``status.trainings``, the read behind ``status`` and every refresh of a trainings view.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from pathlib import Path

STEPS = 50
STOPPED = 3  # what a trainer ended by a stop request returns (the command line's exit status)


def simulate(
    root: Path,
    run_id: str,
    epochs: int = 30,
    epoch_s: float = 2.0,
    command: str | None = None,
    done: threading.Event | None = None,
) -> int:
    """Train nothing for ``epochs`` epochs of ``epoch_s`` seconds, as a trainer would be seen;
    returns 0, or ``STOPPED`` after a stop request. ``done`` ends it early from outside."""
    import pandas as pd

    from cifar_core.artifacts import work as files
    from cifar_core.training.progress import ProgressWriter

    stop = done or threading.Event()
    with files.lock_folder(files.work_dir(root, run_id)) as work:
        command = command or f"simulated training {run_id}"
        writer = ProgressWriter(
            work, run=run_id, kind="train", model="baseline_cnn", epochs=epochs, command=command
        )
        history = files.read_history(work)
        writer.begin_phase(1, 1, STEPS, 128, history)
        for epoch in range(len(history), epochs):
            writer.begin_epoch(epoch)
            start = time.perf_counter()
            for step in range(STEPS):
                if stop.wait(epoch_s / STEPS):  # a sleep, or the end asked from outside
                    return 0
                writer.step(step + 1)
            seconds = time.perf_counter() - start
            row = {"epoch": epoch, "phase": 1, "loss": 2.0 / (epoch + 1), "accuracy": 1 - 0.9 / (epoch + 1)}
            row.update(val_loss=row["loss"] * 1.1, val_accuracy=row["accuracy"] * 0.95)
            row.update(learning_rate=1e-3, epoch_time_s=seconds)
            path = files.history_file(work)
            pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)
            if writer.end_epoch(epoch, seconds):
                return STOPPED
    return 0


@contextlib.contextmanager
def simulated_trainings(root: Path, count: int, epochs: int = 200, epoch_s: float = 1.0):
    """``count`` simulated trainings under ``root`` (threads of this process) for the block."""
    done = threading.Event()
    threads = [
        threading.Thread(target=simulate, args=(root, f"sim-{k}", epochs, epoch_s, None, done), daemon=True)
        for k in range(count)
    ]
    for thread in threads:
        thread.start()
    try:
        yield threads
    finally:
        done.set()
        for thread in threads:
            thread.join()


def refresh_cost(root: Path, trainings: int = 3, repeats: int = 20) -> dict:
    """Median milliseconds of one read of ``trainings`` live simulated trainings
    (``status.trainings``: locks, progress files, histories)."""
    from cifar_core.training import status

    root = Path(root)
    with simulated_trainings(root, trainings):
        deadline = time.time() + 60
        while time.time() < deadline:  # until every one has a few epochs of history
            found, _ = status.trainings(root)
            if len(found) == trainings and all(len(t.history) >= 3 for t in found):
                break
            time.sleep(0.5)
        reads = []
        for _ in range(repeats):
            start = time.perf_counter()
            found, _ = status.trainings(root)
            reads.append((time.perf_counter() - start) * 1000)
        running = sum(t.state == status.RUNNING for t in found)
    return {
        "trainings": trainings,
        "running": running,
        "status_read_ms": statistics.median(reads),
        "status_read_ms_max": max(reads),
    }
