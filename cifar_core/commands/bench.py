"""``benchmark``: training and inference speed and memory per model, each in its own
process; ``--inference`` and ``--saliency`` time what the Classify page does with every
committed run. Only compare figures from one invocation: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from cifar_core.commands.options import add_common, add_set


def register(sub) -> None:
    p = sub.add_parser("benchmark", help="training/inference speed and memory per model")
    add_arguments(p)
    add_common(p)
    p.set_defaults(handler=main)


def projection(
    result: dict, epochs: int, precisions: list[str], n_train: int = 45_000, n_test: int = 5_000
) -> str:
    """The wall time of an ``epochs``-epoch run at the measured speed: training on the
    default split of the shared data (45,000 images) plus six-view TTA on the test split."""
    parts = []
    for p in precisions:
        train_min = epochs * n_train / result["train"][p]["images_per_s"] / 60
        parts.append(f"{p.replace('mixed_', '')} {train_min:.1f} min")
    tta_min = 6 * n_test / result["images_per_s_batch256"] / 60
    return (
        f"{result['model']}: {epochs} epochs of {n_train:,} images: training "
        + ", ".join(parts)
        + f"; + {tta_min:.1f} min for six-view TTA on {n_test:,} test images"
    )


def table(results: list[dict], precisions: list[str]) -> str:
    head = f"{'model':<20}{'params':>11}"
    for p in precisions:
        head += f"{'train img/s ' + p.replace('mixed_', ''):>24}{'wait':>6}"
    head += f"{'ms/img b1':>11}{'img/s b256':>12}{'peak MB':>9}"
    lines = [head]
    for r in results:
        if "error" in r:
            lines.append(f"{r['model']:<20} failed: {r['error']}")
            continue
        name = r["model"] + (f" @{r['input_size']}" if r.get("input_size") else "")
        line = f"{name:<20}{r['params']:>11,}"
        for p in precisions:
            t = r["train"][p]
            line += f"{t['images_per_s']:>24.0f}{t['data_wait_share']:>6.0%}"
        line += (
            f"{r['latency_ms_batch1']:>11.2f}{r['images_per_s_batch256']:>12.0f}{r['peak_memory_mb']:>9.0f}"
        )
        lines.append(line)
        if "train_phase2" in r:  # the fine-tuning phase, on pixels, top of the backbone unfrozen
            t2 = r["train_phase2"]
            line = f"{'  phase 2':<20}{t2[precisions[0]]['trainable_params']:>11,}"
            for p in precisions:
                line += f"{t2[p]['images_per_s']:>24.0f}{t2[p]['data_wait_share']:>6.0%}"
            lines.append(line)
    return "\n".join(lines)


def add_arguments(p) -> None:
    from argparse import SUPPRESS

    p.add_argument("--models", help="comma-separated names (default: the reference zoo, as run --all)")
    p.add_argument("--steps", type=int, default=8, help="timed training steps per precision")
    help = "comma-separated (default: float32, and mixed_bfloat16 where the CPU has bfloat16 instructions)"
    p.add_argument("--precisions", help=help)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--input-size", type=int, help="transfer models: measure at this input size (px)")
    p.add_argument("--epochs", type=int, help="also print the wall time of an N-epoch run at this speed")
    p.add_argument(
        "--profile", action="store_true", help="forward + backward time per layer; the step's parts"
    )
    help = "only time the heatmaps of one photo for every run's model (the Classify page's Why?)"
    p.add_argument("--saliency", action="store_true", help=help)
    help = "only time every committed run's inference as the Classify page calls it (load, batch 1, 256)"
    p.add_argument("--inference", action="store_true", help=help)
    help = "only time a 5-epoch fit of cnn_bn with and without the recorder (tracking), and its finish"
    p.add_argument("--recorder", action="store_true", help=help)
    p.add_argument("--train-limit", type=int, default=5000, help="--recorder: train images")
    help = "only time N training steps with XLA off and N with it on, in turn, for each of --models"
    p.add_argument("--xla-pairs", type=int, metavar="N", help=help)
    help = "only the Run page's cost of every committed zoo run: FLOPs, file size, latency, memory"
    p.add_argument("--cost", action="store_true", help=help)
    help = "only time the engine's read of N live (simulated) trainings: one refresh of status"
    p.add_argument("--status", type=int, nargs="?", const=3, metavar="N", help=help)
    help = (
        "only the cost of coordinating through PostgreSQL (--queue URL or $CIFAR_DB): a tiny "
        "queue and study per worker count, e.g. 1,2"
    )
    p.add_argument("--workers", metavar="N,N", help=help)
    p.add_argument(
        "--queue", metavar="URL", help="--workers: the PostgreSQL server (its user may create databases)"
    )
    add_set(p, "config overrides for every model measured (as train --set), repeatable")
    p.add_argument("--single", help=SUPPRESS)  # internal: one model in this process


def default_precisions(kind: str | None = None) -> str:
    """float32 everywhere; bfloat16 beside it only where the CPU runs it natively: an
    emulated bfloat16 step (AVX2, AVX-512 without BF16) is many times slower and says nothing."""
    from cifar_core.training import precision

    return "float32" if (kind or precision.cpu_kind()) == "none" else "float32,mixed_bfloat16"


def main(args: argparse.Namespace) -> int:
    from cifar_core.benchmark import measure

    precisions = [p.strip() for p in (args.precisions or default_precisions()).split(",") if p.strip()]
    settings = list(args.settings or [])
    if args.workers:
        return _workers(args)
    if args.saliency:
        return _saliency(args)
    if args.inference:
        return _inference(args)
    if args.recorder:
        return _recorder(args)
    if args.status:
        return _status(args)
    if args.cost:
        return _cost(args)
    if args.xla_pairs:
        return _xla(args, precisions[0], settings)
    if args.single:  # the child process of _models: one model, JSON on stdout
        result = measure(args.single, args.steps, precisions, args.input_size, settings, args.profile)
        print(json.dumps(result))
        return 0
    return _models(args, precisions, settings)


def _workers(args: argparse.Namespace) -> int:
    from cifar_core import database
    from cifar_core.benchmark import coordination
    from cifar_core.commands.options import parse_seeds
    from cifar_core.errors import ConfigError

    url = database.url_from(args.queue)
    if url is None or not args.data_dir:
        raise ConfigError("benchmark --workers needs --queue URL (or $CIFAR_DB) and --data-dir")
    counts = parse_seeds(args.workers)
    rows = coordination.measure(url, counts, args.data_dir, train_limit=args.train_limit)
    print(coordination.table(rows))
    return 0


def _xla(args: argparse.Namespace, precision: str, settings: list[str]) -> int:
    from cifar_core.benchmark import xla_pairs
    from cifar_core.models import get_spec

    for name in [n.strip() for n in (args.models or "fast").split(",")]:
        get_spec(name)  # an unknown name: a clear error before anything is built
        r = xla_pairs(name, args.xla_pairs, precision, settings)
        print(
            f"{name}, {precision}, batch {r['batch_size']}: seconds per training step, XLA off / on, in turn"
        )
        for i, (off, on) in enumerate(zip(r["off"], r["on"]), 1):
            print(f"  pair {i}: {off:7.2f} / {on:7.2f}   {on / off:.2f}")
        change = 1 - r["median_ratio"]
        more = "less" if change > 0 else "more"
        print(f"  median on/off {r['median_ratio']:.2f}: XLA takes {abs(change):.0%} {more} time")
    return 0


def _saliency(args: argparse.Namespace) -> int:
    from cifar_core.benchmark import saliency_speed

    r = saliency_speed(args.artifacts_dir)
    print(
        f"heatmaps of one photo for all {r['models']} models: {r['warm_s']:.2f} s after warm-up "
        f"(first call, with loading and tracing: {r['first_s']:.1f} s)"
    )
    return 0


def _recorder(args: argparse.Namespace) -> int:
    from cifar_core import runtime
    from cifar_core.benchmark import recorder_overhead
    from cifar_core.training import tracking

    data = tracking.load_data(args.data_dir, train_limit=args.train_limit)
    r = recorder_overhead(data, epochs=args.epochs or 5)
    plain = " / ".join(f"{s:.1f}" for s in r["plain_s"])
    return _emit(
        args,
        r,
        f"{r['model']}, {r['epochs']} epochs of {r['images']:,} images on {runtime.cpu_model()}: "
        f"plain {plain} s, recorded {r['recorded_s']:.1f} s: overhead {r['overhead']:+.1%} "
        f"(the two plain fits differ by {r['noise']:.1%}); finish {r['finish_s']:.1f} s",
    )


def _cost(args: argparse.Namespace) -> int:
    from cifar_core import runtime
    from cifar_core.benchmark.serve_speed import model_costs

    rows = model_costs(args.artifacts_dir)
    head = f"{'model':<28}{'params':>11}{'M FLOPs':>9}{'M MACs':>8}{'file MB':>8}"
    head += f"{'b1 ms':>7}{'img/s b500':>11}{'+MB':>6}"
    lines = [head]
    for r in rows:
        memory = "—" if r["peak_memory_mb_batch1"] is None else f"{r['peak_memory_mb_batch1']:.1f}"
        lines.append(
            f"{r['model'][:27]:<28}{r['params']:>11,}{r['flops'] / 1e6:>9.1f}{r['multiply_adds'] / 1e6:>8.1f}"
            f"{r['file_mb']:>8.1f}{r['latency_ms_batch1']:>7.2f}{r['images_per_s_batch500']:>11,.0f}{memory:>6}"
        )
    lines.append(f"on {runtime.cpu_model()} ({', '.join(runtime.cpu_features()) or 'no AVX2'})")
    return _emit(args, rows, "\n".join(lines))


def _status(args: argparse.Namespace) -> int:
    import tempfile

    from cifar_core import runtime
    from cifar_core.benchmark.refresh import refresh_cost

    with tempfile.TemporaryDirectory() as root:
        r = refresh_cost(args.artifacts_dir or root, trainings=args.status)
    return _emit(
        args,
        r,
        f"{r['running']} of {r['trainings']} trainings running, on {runtime.cpu_model()}: one refresh "
        f"reads them in {r['status_read_ms']:.1f} ms (median of 20, max {r['status_read_ms_max']:.1f}); "
        "the Training now page's own run: python scripts/training_now_cost.py",
    )


def _emit(args: argparse.Namespace, result, text: str) -> int:
    """Print ``result`` as JSON with ``--json``, else ``text``."""
    print(json.dumps(result) if args.json else text)
    return 0


def _inference(args: argparse.Namespace) -> int:
    from cifar_core.benchmark import inference_speed

    rows = inference_speed(args.artifacts_dir)
    head = f"{'run':<36}{'served by':>10}{'load s':>8}{'batch-1 ms':>11}{'img/s @256':>11}"
    lines = [head + f"   |{'Keras load s':>13}{'batch-1 ms':>11}{'img/s @256':>11}"]
    for r in rows:
        served = f"{r['served_by']:>10}{r['load_s']:>8.2f}{r['latency_ms_batch1']:>11.2f}"
        keras = "".join(
            "—".rjust(width) if r[f"keras_{key}"] is None else f"{r[f'keras_{key}']:>{width}.{digits}f}"
            for key, width, digits in (
                ("load_s", 13, 2),
                ("latency_ms_batch1", 11, 2),
                ("images_per_s_batch256", 11, 0),
            )
        )
        lines.append(f"{r['run']:<36}{served}{r['images_per_s_batch256']:>11.0f}   |{keras}")
    total_ms = sum(r["latency_ms_batch1"] for r in rows)
    lines.append(
        f"{len(rows)} models: batch-1 latencies sum to {total_ms:.1f} ms per photo; "
        f"loading them all took {sum(r['load_s'] for r in rows):.1f} s "
        f"(Keras: {sum(r['keras_latency_ms_batch1'] or 0 for r in rows):.1f} ms, "
        f"{sum(r['keras_load_s'] or 0 for r in rows):.1f} s, TensorFlow's import not counted)"
    )
    return _emit(args, rows, "\n".join(lines))


def _measure_apart(args: argparse.Namespace, name: str, precisions: list[str], settings: list[str]) -> dict:
    """One model's figures from a child process of this command (its own peak memory)."""
    cmd = [sys.executable, "-m", "cifar_core", "benchmark", "--single", name, "--steps", str(args.steps)]
    cmd += ["--precisions", ",".join(precisions)]
    cmd += ["--input-size", str(args.input_size)] if args.input_size else []
    cmd += ["--profile"] if args.profile else []
    cmd += [f"--set={setting}" for setting in settings]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": name, "error": tail[:200]}


def _models(args: argparse.Namespace, precisions: list[str], settings: list[str]) -> int:
    from cifar_core.benchmark import preset, time_to_accuracy
    from cifar_core.benchmark.train_speed import SMALL_CROP_NOTE
    from cifar_core.config import TrainConfig
    from cifar_core.models import get_spec, list_models

    names = [n.strip() for n in args.models.split(",")] if args.models else list_models(zoo_only=True)
    for name in names:
        get_spec(name)
        preset(name, settings)  # a bad --set fails here, before any measuring
    results = []
    for name in names:
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        results.append(_measure_apart(args, name, precisions, settings))
    if args.json:
        return _emit(
            args, {"models": results, "fast_time_to_accuracy": time_to_accuracy(args.artifacts_dir)}, ""
        )
    print(table(results, precisions))
    if settings:
        print("settings: " + " ".join(settings))
    if any(TrainConfig.from_preset(name, settings).augment.small_crop for name in names):
        print(SMALL_CROP_NOTE)
    for r in results:
        if "error" not in r:
            _details(r, args, precisions)
    _time_to_accuracy(args.artifacts_dir)
    return 0


def _details(r: dict, args: argparse.Namespace, precisions: list[str]) -> None:
    """A model's projected run time (``--epochs``) and per-layer profile (``--profile``)."""
    if args.epochs:
        print(projection(r, args.epochs, precisions))
    for p in precisions if args.profile else []:
        from cifar_core.benchmark import stepprofile

        t = r["train"][p]
        print(f"\n{r['model']}, {p}, batch {t['batch_size']}: forward + backward per layer")
        step_ms = 1000 * t["batch_size"] / t["images_per_s"]
        print(stepprofile.table(t["layers"], step_ms=step_ms))
        print(f"\n{r['model']}, {p}, batch {t['batch_size']}: the step's parts, ms per batch")
        print(stepprofile.parts_table(t["parts"], step_ms, t["batch_size"], 45_000))


def _time_to_accuracy(root) -> None:
    from cifar_core.benchmark import TARGETS, time_to_accuracy

    for row in time_to_accuracy(root):
        fmt = lambda s: "not reached" if s is None else f"{s / 60:.1f} min"  # noqa: E731
        reached = ", ".join(f"{t:.0%} val after {fmt(row[f's_to_{round(t * 100)}'])}" for t in TARGETS)
        print(f"fast run {row['run']}: {reached}")
