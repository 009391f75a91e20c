"""Trainers for the Training now tests: real ones (``python -m cifar_core train`` in a child
process, on the tiny image folder) and simulated ones (simulated_trainer.py: the
lock, progress file and history of a trainer, without TensorFlow)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT

HERE = Path(__file__).resolve().parent


def train_args(root: Path, data: Path, epochs: int = 60) -> list[str]:
    """A baseline_cnn run on the tiny folder that trains every epoch it is given."""
    return [
        "train", "--model", "baseline_cnn", "--data-dir", str(data), "--artifacts-dir", str(root),
        "--epochs", str(epochs), "--batch-size", "32", "--val-size", "50", "--precision", "float32",
        "--set", "early_stopping_patience=0", "--no-export",
    ]  # fmt: skip


def command_of(args: list[str]) -> str:
    """What the trainer records as the command that resumes it."""
    return shlex.join(["python", "-m", "cifar_core", *args])


def start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cifar_core", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def simulate(root: Path, run_id: str, epochs: int = 200, epoch_s: float = 0.5) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "simulated_trainer.py"), str(root), run_id, str(epochs), str(epoch_s)],
        cwd=ROOT,
    )


def wait_for(predicate, timeout: float = 120, what: str = "condition", proc=None, log=None):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = Path(log).read_text()[-2000:] if log else ""
            raise AssertionError(f"trainer exited ({proc.returncode}) before {what}:\n{tail}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def training(root: Path, min_epochs: int = 0):
    """The one training under ``root`` once it has ``min_epochs`` epochs of history."""
    from cifar_core.training import status

    found, _ = status.trainings(root)
    return found[0] if len(found) == 1 and len(found[0].history) >= min_epochs else None
