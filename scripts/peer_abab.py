"""The Muon peer and `fast:muon8` (its recipe) in turn, in one sitting: A B A B, each
stopped after N epochs.

    python scripts/peer_abab.py OUT --epochs 3 --rounds 2          # runs, then the table
    python scripts/peer_abab.py OUT --report                       # the table of a finished OUT

This machine's speed drifts by up to a quarter over hours, so two full runs on two nights
do not compare. Here each side trains a few epochs (the preset's 8-epoch schedule, stopped
after ``--epochs``), then the other side does, and again: both see the same hours. Block k
of the peer (A) prints to ``OUT/A{k}.log``; `fast`'s (B) trains into ``OUT/B{k}`` (a work
folder, left unfinished). The table counts training seconds only: the peer stops its timer
to evaluate, and a run's history records its validation pass apart (``validation_s``). The
first epoch of each block carries the start-up (TensorFlow's tracing, PyTorch's first
allocation) and is shown but left out of the means. The peer trains 22 batches of 2,000 an
epoch (44,000 images, the last partial batch dropped), `fast` 23 (45,000), so the ratio is
per image as well as per epoch.

Needs the peer's environment (``--peer-python``, default ``/tmp/peer-venv/bin/python``) and
the split folder of ``scripts/peer_split.py`` (``--split``, default ``/tmp/cifar10-valsplit``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_table import peer_epochs, run_epochs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT.parent / "shared" / "peers" / "airbench94_muon_cpu.py"
DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg"
IMAGES = {"A": 44_000, "B": 45_000}  # per epoch: 22 batches of 2,000; 22 and one of 1,000


def _history(folder: Path) -> Path | None:
    found = sorted(folder.rglob("history.csv"))
    return found[0] if found else None


def _lines(path: Path | None) -> int:
    return len(path.read_text().strip().splitlines()) - 1 if path and path.exists() else 0


def _block(cmd: list[str], log: Path, done, env=None) -> None:
    """Run ``cmd`` until ``done()`` is true, then stop it (SIGTERM, then SIGKILL)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            while not done() and proc.poll() is None:
                time.sleep(5)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if not done():
        sys.exit(f"{cmd[1]} stopped before its epochs: see {log}")


def run(out: Path, epochs: int, rounds: int, peer_python: str, split: Path, data: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for k in range(1, rounds + 1):
        log = out / f"A{k}.log"
        print(f"{time.strftime('%H:%M:%S')} A{k}: the Muon peer, {epochs} epochs", flush=True)
        _block(
            [peer_python, "-u", str(PEER), str(split), str(data)],
            log,
            lambda log=log: len(peer_epochs(log.read_text())[0]) >= epochs if log.exists() else False,
        )
        folder = out / f"B{k}"
        print(f"{time.strftime('%H:%M:%S')} B{k}: fast:muon8, {epochs} epochs", flush=True)
        cmd = [sys.executable, "-m", "cifar_core", "train", "--model", "fast:muon8", "--data-dir", str(data)]
        _block(
            [*cmd, "--artifacts-dir", str(folder)],
            out / f"B{k}.log",
            lambda folder=folder: _lines(_history(folder)) >= epochs,
            env,
        )
    print(f"{time.strftime('%H:%M:%S')} done", flush=True)


def seconds(out: Path) -> dict[str, list[list[float]]]:
    """Per side, per block: the training seconds of each epoch."""
    found = {"A": [], "B": []}
    for log in sorted(out.glob("A*.log")):
        found["A"].append([row["seconds"] for row in peer_epochs(log.read_text())[0]])
    for folder in sorted(p for p in out.glob("B*") if p.is_dir()):
        history = _history(folder)
        if history:
            found["B"].append([row["seconds"] for row in run_epochs(history.parent)])
    return found


def report(out: Path) -> None:
    found = seconds(out)
    labels = {"A": "airbench94_muon (PyTorch)", "B": "fast (Keras 3, TensorFlow)"}
    print("| block | side | epoch 1 (start-up) | later epochs, s | mean of later, s | images/s |")
    print("| --- | --- | ---: | --- | ---: | ---: |")
    means = {}
    for side in ("A", "B"):
        later = []
        for k, epochs in enumerate(found[side], 1):
            rest = epochs[1:]
            later += rest
            mean = statistics.mean(rest) if rest else float("nan")
            print(
                f"| {side}{k} | {labels[side]} | {epochs[0]:.0f} | {', '.join(f'{s:.0f}' for s in rest)} "
                f"| {mean:.0f} | {IMAGES[side] / mean:.1f} |"
            )
        means[side] = statistics.mean(later) if later else float("nan")
    a, b = means["A"], means["B"]
    print(
        f"\nlater epochs: peer {a:.0f} s, fast {b:.0f} s: fast/peer {b / a:.3f} per epoch, "
        f"{(b / IMAGES['B']) / (a / IMAGES['A']):.3f} per image"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="only the table of a finished OUT")
    parser.add_argument("--peer-python", default="/tmp/peer-venv/bin/python")
    parser.add_argument("--split", type=Path, default=Path("/tmp/cifar10-valsplit"))
    parser.add_argument("--data-dir", type=Path, default=DATA)
    args = parser.parse_args()
    if not args.report:
        run(args.out, args.epochs, args.rounds, args.peer_python, args.split, args.data_dir)
    report(args.out)


if __name__ == "__main__":
    main()
