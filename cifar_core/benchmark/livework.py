"""What the Training now page costs: simulated trainers and the time of one refresh.

A simulated trainer is a process that does what a real one does to its work folder (the
lock, ``progress.Tracker``'s file, a history row per epoch, stop requests) without
TensorFlow, so that several can run at once on a small machine:

    python -m cifar_core.benchmark.livework ROOT RUN_ID [EPOCHS] [SECONDS_PER_EPOCH]

``refresh_cost`` starts some, then times ``status.trainings`` and the page's script.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

STEPS = 50


def simulate(root: Path, run_id: str, epochs: int = 30, epoch_s: float = 2.0) -> int:
    """Train nothing for ``epochs`` epochs of ``epoch_s`` seconds, as a trainer would be seen."""
    import pandas as pd

    from cifar_core.artifacts import work as files
    from cifar_core.progress import Tracker

    with files.lock_folder(files.work_dir(root, run_id)) as work:
        command = f"python -m cifar_core.benchmark.livework {root} {run_id} {epochs} {epoch_s}"
        tracker = Tracker(
            work, run=run_id, kind="train", model="baseline_cnn", epochs=epochs, command=command
        )
        done = files.read_history(work)
        tracker.begin_phase(1, 1, STEPS, 128, done)
        for epoch in range(len(done), epochs):
            tracker.begin_epoch(epoch)
            start = time.perf_counter()
            for step in range(STEPS):
                time.sleep(epoch_s / STEPS)
                tracker.step(step + 1)
            seconds = time.perf_counter() - start
            row = {"epoch": epoch, "phase": 1, "loss": 2.0 / (epoch + 1), "accuracy": 1 - 0.9 / (epoch + 1)}
            row.update(val_loss=row["loss"] * 1.1, val_accuracy=row["accuracy"] * 0.95)
            row.update(learning_rate=1e-3, epoch_time_s=seconds)
            path = files.history_file(work)
            pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)
            if tracker.end_epoch(epoch, seconds):
                return 3
    return 0


@contextlib.contextmanager
def simulated_trainers(root: Path, count: int, epochs: int = 200, epoch_s: float = 1.0):
    """``count`` simulated trainers under ``root`` for the duration of the block."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cifar_core.benchmark.livework",
                str(root),
                f"sim-{k}",
                str(epochs),
                str(epoch_s),
            ]
        )
        for k in range(count)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _page_runner(page: Path, root: Path):
    """A function that runs the Training now page once (Streamlit's AppTest: the script run
    a browser's refresh causes), or None when the dashboard is not beside the package."""
    if not page.exists():
        return None
    import os

    from streamlit.testing.v1 import AppTest

    os.environ["CIFAR_ARTIFACTS"] = str(root)
    sys.path.insert(0, str(page.parent.parent))  # the pages import ``common``
    app = AppTest.from_file(str(page), default_timeout=120)
    app.run()  # imports and caches once, as a server has after the first visit

    def run() -> None:
        app.run()
        if app.exception:
            raise RuntimeError(app.exception[0].value)

    return run


def refresh_cost(root: Path, trainings: int = 3, repeats: int = 20) -> dict:
    """Median milliseconds of one look at ``trainings`` live simulated trainers: the
    engine's read (``status.trainings``) and the page's whole script run."""
    from cifar_core import status

    root = Path(root)
    page = Path(__file__).resolve().parents[2] / "dashboard" / "views" / "training_now.py"
    with simulated_trainers(root, trainings):
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
        runner = _page_runner(page, root)
        pages = []
        for _ in range(repeats if runner else 0):
            start = time.perf_counter()
            runner()
            pages.append((time.perf_counter() - start) * 1000)
    return {
        "trainings": trainings,
        "running": running,
        "status_read_ms": statistics.median(reads),
        "page_run_ms": statistics.median(pages) if pages else None,
        "page_run_ms_max": max(pages) if pages else None,
    }


if __name__ == "__main__":
    where, name, *rest = sys.argv[1:]
    sys.exit(simulate(Path(where), name, int(rest[0]) if rest else 30, float(rest[1]) if rest[1:] else 2.0))
