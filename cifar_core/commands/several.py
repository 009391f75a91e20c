"""``worker``: train the queue's jobs one at a time on this machine (cifar_core.cluster)."""

from __future__ import annotations

import argparse

from cifar_core.commands.options import add_common, add_queue


def register(sub) -> None:
    p = sub.add_parser(
        "worker",
        help="train jobs from a PostgreSQL queue (run --queue) until it is empty, or forever with --wait",
        description="Takes the queue's jobs one at a time and trains each run into the shared "
        "artifacts root (the one the queue was filled for; every machine mounts it).",
    )
    add_queue(p, "the queue's PostgreSQL server (default: $CIFAR_DB)")
    p.add_argument("--wait", action="store_true", help="keep waiting for new jobs when the queue is empty")
    p.add_argument(
        "--heartbeat",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between heartbeats; a worker silent for three is presumed dead and its job "
        "given to another (default: %(default)s)",
    )
    p.add_argument("--poll", type=float, default=5.0, metavar="S", help=argparse.SUPPRESS)
    add_common(p)
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from cifar_core import artifacts, database
    from cifar_core.cluster import worker
    from cifar_core.errors import ConfigError

    url = database.url_from(args.queue)
    if url is None:
        raise ConfigError(
            "worker needs the queue's server: --queue postgresql://USER:PASSWORD@HOST/DB or $CIFAR_DB"
        )
    root = artifacts.artifacts_root(args.artifacts_dir)
    done = worker.work(url, root, args.data_dir, wait=args.wait, heartbeat=args.heartbeat, poll=args.poll)
    trained = sum(outcome == "trained" for _, outcome in done)
    print(f"worker: {len(done)} jobs taken here, {trained} trained")
    return 0
