"""``status``: every training under the artifacts root, live (the Training now page's table)."""

from __future__ import annotations

import argparse
import time

from cifar_core.commands.options import add_common, add_queue


def register(sub) -> None:
    p = sub.add_parser(
        "status",
        help="trainings in progress, stopped or failed: epoch, ETA, process; stop one",
        description="Every training under the artifacts root (CLI train/run, ladder rungs, tuning "
        "trials, recorded notebook fits) with its state, epoch, ETA and the command that resumes it.",
    )
    add_common(p, data=False)
    p.add_argument("--watch", type=float, metavar="SECONDS", help="print again every SECONDS until Ctrl-C")
    p.add_argument(
        "--stop",
        metavar="TRAINING",
        help="ask this training (its run id or work folder) to stop at the end of its epoch; "
        "the command that trained it resumes it; with a queue, a queued run's job is cancelled",
    )
    add_queue(p, "also show this PostgreSQL queue's jobs: queued, running, done, failed (default: $CIFAR_DB)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from cifar_core import artifacts, database
    from cifar_core.training import status

    root = artifacts.artifacts_root(args.artifacts_dir)
    url = database.url_from(args.queue)
    if args.stop and url:
        from cifar_core.cluster import queue

        state, run_id = queue.cancel(url, args.stop)
        if state == "cancelled":
            print(f"cancelled the queued job of {run_id}")
            return 0
        args.stop = run_id  # a worker trains it: ask the run to stop, as any training
    if args.stop:
        training = status.stop(root, args.stop)
        print(f"asked {training.run} (pid {training.pid}) to stop after epoch {training.next_epoch}")
        print(f"resume it with: {training.resume_hint}")
        return 0
    while True:
        print(render(root))
        if url:
            print(render_queue(url))
        if not args.watch:
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def render(root) -> str:
    """The status table and, below it, what to do about stopped and failed trainings."""
    import pandas as pd

    from cifar_core.training import status

    found, warnings = status.trainings(root)
    lines = [f"warning: {w}" for w in warnings]
    if not found:
        return "\n".join([*lines, f"no training under {root}/work"])
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        frame = status.status_frame(found)
        lines.append(frame.loc[:, (frame != "").any()].to_string(index=False))
    for t in found:
        if t.state != status.RUNNING:
            lines.append(f"{t.run}: {t.label}" + (f" ({t.error})" if t.error else ""))
            lines.append(f"  resume: {t.resume_hint}" if t.resumable else "  nothing to resume")
    return "\n".join(lines)


def render_queue(url: str) -> str:
    """The queue's jobs: state, attempts, worker and host (``status --queue``)."""
    import pandas as pd

    from cifar_core import database
    from cifar_core.cluster import queue

    frame = queue.jobs_frame(url)
    if frame.empty:
        return f"queue {database.where(url)}: no jobs"
    counts = frame["state"].value_counts()
    head = f"queue {database.where(url)}: " + ", ".join(f"{n} {state}" for state, n in counts.items())
    shown = frame[["job", "run_id", "label", "state", "attempts", "worker", "outcome"]].fillna("")
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 60):
        return f"{head}\n{shown.to_string(index=False)}"
