"""``export``: a run's model as an ONNX file, checked against the Keras model (exports.py)."""

from __future__ import annotations

import argparse

from cifar_core.commands.options import add_common


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export runs' models to ONNX with a parity report (what the dashboard serves)",
        description="Export each run's model to ONNX (tf2onnx), check it against the Keras model on "
        "the run's test images (max probability difference, top-1 agreement, latency of both) and "
        "store that report in the run's manifest. The file goes to the cache folder, keyed by the "
        "model file's sha256; --out copies it where you want it.",
    )
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or use --all)")
    p.add_argument("--all", action="store_true", help="every run that stores a model")
    p.add_argument(
        "--list", action="store_true", help="print the parity reports recorded in the runs (exports nothing)"
    )
    p.add_argument(
        "--format", default="onnx", help="onnx (the one format served; see the README's 'Deploy a model')"
    )
    p.add_argument("--sample", type=int, help="check on this many test images (default: all)")
    p.add_argument("--force", action="store_true", help="export again even if a checked export exists")
    p.add_argument("--out", help="also copy each export to this folder as <run id>.onnx")
    p.add_argument(
        "--trust-code", action="store_true", help="import the runs' stored code to load custom layers"
    )
    p.add_argument(
        "--cache-only",
        action="store_true",
        help="leave the run folders untouched (no report in the manifest): what the dashboard runs",
    )
    add_common(p, data=False)
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from cifar_core import artifacts
    from cifar_core.errors import CifarError, ConfigError
    from cifar_core.serving import exports

    if args.format != exports.FORMAT:
        raise ConfigError(
            f"--format {args.format}: only onnx is exported. TFLite was measured here: the converter "
            "works, but the LiteRT runtime has no Erf op without the Flex delegate, which GELU models "
            "(fast) need"
        )
    root = artifacts.artifacts_root(args.artifacts_dir)
    if args.list:
        import pandas as pd

        from cifar_core.analysis.report import markdown_table

        runs, _ = artifacts.load_runs(root)
        rows = pd.DataFrame(exports.recorded(runs)).astype(object).fillna("")
        print(markdown_table(rows) if rows.size else f"no run with a model file in {root}")
        return 0
    if bool(args.all) == bool(args.runs):
        raise ConfigError("say which runs: RUN... or --all")
    if args.all:
        runs, _ = artifacts.load_runs(root)
        run_ids = [run.run_id for run in runs if run.has_model]
    else:
        run_ids = [artifacts.check_run_id(r) for r in args.runs]
        for run_id in run_ids:
            artifacts.read_manifest(root, run_id)  # a wrong id fails before any export
    failed = 0
    for i, run_id in enumerate(run_ids, 1):
        try:
            report = exports.export_run(
                root,
                run_id,
                trust_code=args.trust_code,
                record=not args.cache_only,
                sample=args.sample,
                force=args.force,
            )
        except CifarError as error:
            failed += 1
            print(f"[{i}/{len(run_ids)}] {run_id}: {exports.describe_failure(error)}", flush=True)
            continue
        print(f"[{i}/{len(run_ids)}] {run_id}: {report['file']}: {exports.summary(report)}", flush=True)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report["file"], Path(args.out) / f"{run_id}.onnx")
    return 1 if failed else 0
