"""Export a run's model to ONNX, check it against the Keras model, and find it again.

    report = export_run(root, "fast-1a2b3c4d")         # writes the .onnx and its parity report
    path = find_export(run.model_path)                  # the checked export, or None
    predict = inference.OnnxPredictor(path)             # served by ONNX Runtime, no TensorFlow

Where exports live: ``<cache>/exports/<sha256 of model.keras>.onnx`` (the cache folder is
``CIFAR_CACHE_DIR``, default ``~/.cache/cifar_core``), with ``<same>.json`` beside it: the
parity report. Keyed by the model file's content, so an export follows its model through a
clone, a copy or a rename, and a changed model file is never served by an old export. The
committed runs' models (34 MB) stay the only copy in git; an export is made once per
machine (by ``train`` at the end of a run, by ``export``, or by the dashboard's first visit
in a separate process). ``export`` also records the report in the run's manifest.

The conversion is the ecosystem's: the model's inference function is traced by TensorFlow,
its variables and captured constants frozen (``convert_variables_to_constants_v2``), and
the graph converted by ``tf2onnx``. (Keras' own ``model.export(format="onnx")`` passes the
captured constants of a ``Normalization`` layer as extra model inputs, so the file cannot be
run with the image alone; LiteRT, the other runtime, has no Erf without the Flex delegate,
which GELU needs: measured in the README's "Deploy a model".)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from cifar_core.artifacts.exported import (
    FORMAT,
    MAX_PROB_DIFF,
    export_path,
    exports_dir,
    find_export,
    missing,
    model_digest,
    passed,
    read_report,
    report_path,
)
from cifar_core.errors import ExportError, ModelLoadError
from cifar_core.fileio import atomic_write, write_json

__all__ = [
    "FORMAT",
    "MAX_PROB_DIFF",
    "BackgroundExport",
    "convert",
    "export_path",
    "export_run",
    "exports_dir",
    "find_export",
    "missing",
    "model_digest",
    "parity",
    "passed",
    "read_report",
    "recorded",
    "report_path",
    "summary",
]

OPSET = 17
# The dashboard's own one-time export checks each model on this many of its test images
# (``export`` alone checks all of them, and records that in the manifest).
BACKGROUND_SAMPLE = 500


def convert(model, path: Path) -> Path:
    """Write ``model``'s inference call (uint8 images in, probabilities out) as ONNX."""
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None, *model.input_shape[1:]), model.inputs[0].dtype, name="images")
    function = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(),
            name=model.name,
            input_names=[t.name for t in frozen.inputs],
            output_names=[t.name for t in frozen.outputs],
            opset=OPSET,
        )
    except Exception as error:  # noqa: BLE001 -- tf2onnx raises many kinds
        raise ExportError(
            f"tf2onnx could not convert {model.name}: {str(error).splitlines()[0][:300]}"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, proto.SerializeToString())


def _timed(predict, x: np.ndarray) -> tuple[np.ndarray, float]:
    predict(x[:1])  # warm
    start = time.perf_counter()
    out = predict(x)
    return out, (time.perf_counter() - start) * 1000 / len(x)


def parity(keras_predict, export_predict, x: np.ndarray) -> dict:
    """How far the export's probabilities are from the Keras model's on images ``x``
    (max absolute difference, top-1 agreement) and the latency of both (batch 1: the
    engine's ``evaluate.latency_ms_per_image``, the median of 30 calls)."""
    from cifar_core.evaluate import latency_ms_per_image

    reference, keras_ms = _timed(keras_predict, x)
    exported, export_ms = _timed(export_predict, x)
    return {
        "n_images": int(len(x)),
        "max_prob_diff": float(np.abs(reference - exported).max()),
        "top1_agreement": float((reference.argmax(1) == exported.argmax(1)).mean()),
        "keras_ms_per_image": round(keras_ms, 4),
        "export_ms_per_image": round(export_ms, 4),
        "keras_ms_batch1": round(latency_ms_per_image(keras_predict, x[0]), 3),
        "export_ms_batch1": round(latency_ms_per_image(export_predict, x[0]), 3),
    }


def check_images(run, sample: int | None = None) -> tuple[np.ndarray, str]:
    """The run's test images to check an export on: all its test images when its data
    folder is on this machine (``sample``: that many, evenly spread), else its thumbnails,
    else (a run trained on arrays without thumbnails) 64 seeded random images."""
    from cifar_core import artifacts

    indices = artifacts.available_test_indices(run)
    if sample is not None and len(indices) > sample:
        indices = indices[np.linspace(0, len(indices) - 1, sample).astype(int)]
    images = [image for image in artifacts.test_images(run, indices) if image is not None]
    n_all = len(run.predictions["y_true"])
    if images:
        where = "test images" if len(images) == n_all else f"test images ({len(images)} of {n_all})"
        return np.stack(images).astype(np.uint8), where
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, run.manifest["input_size"], run.manifest["input_size"], 3), np.uint8), (
        "random images (no test images on this machine)"
    )


def export_run(
    root,
    run_id: str,
    *,
    trust_code: bool = False,
    record: bool = True,
    sample: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> dict:
    """Export a run's model to ONNX with its parity report; return the report.

    Skips the conversion when a passing export of the same model file exists (``force``
    redoes it). ``record`` stores the report in the run's manifest (``exports.onnx``);
    the dashboard's own background export does not (it only reads runs). Raises
    ``ExportError`` when the export is made but does not match the Keras model (the file
    is then removed), ``ModelLoadError`` when the model cannot be loaded.
    """
    from cifar_core import artifacts
    from cifar_core.serving.inference import OnnxPredictor, Predictor, load_model

    root = artifacts.artifacts_root(root)
    run = artifacts.read_run(root, run_id)
    if not run.has_model:
        raise ExportError(f"{run_id}: a lean run stores no model file, so there is nothing to export")
    path = export_path(run.model_path, cache_dir)
    report = read_report(path) if path.is_file() and not force else None
    if not passed(report):
        model = load_model(run.model_path, run.code_files if trust_code else ())
        start = time.perf_counter()
        convert(model, path)
        seconds = time.perf_counter() - start
        x, where = check_images(run, sample)
        report = {
            "format": FORMAT,
            "file": str(path),
            "bytes": path.stat().st_size,
            "model_sha256": model_digest(run.model_path),
            "run_id": run_id,
            "convert_s": round(seconds, 2),
            "checked_on": where,
            "runtime": _runtime_versions(),
            **parity(Predictor(model), OnnxPredictor(path), x),
        }
        write_json(report_path(path), report)
        if not passed(report):
            path.unlink(missing_ok=True)
            raise ExportError(
                f"{run_id}: the export differs from the Keras model (max probability difference "
                f"{report['max_prob_diff']:.2g}, top-1 agreement {report['top1_agreement']:.2%} on "
                f"{report['n_images']} {where}); nothing is served from it"
            )
    if record:
        artifacts.record_export(root, run_id, FORMAT, report)
    return report


def _runtime_versions() -> dict:
    import onnxruntime
    import tf2onnx

    return {"onnxruntime": onnxruntime.__version__, "tf2onnx": tf2onnx.__version__, "opset": OPSET}


class BackgroundExport:
    """``python -m cifar_core export --all --cache-only --sample 500`` in a separate process: how the
    dashboard makes the exports it lacks without importing TensorFlow itself.

    ``start`` launches it at most once per object; ``wait(path)`` blocks until that model's
    export exists or the process has ended; ``log`` is its output file.
    """

    def __init__(self, root: Path, log: Path | None = None):
        self.root = Path(root)
        self.log = log or exports_dir() / "dashboard-export.log"
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> subprocess.Popen:
        with self._lock:
            if self._process is None:
                self.log.parent.mkdir(parents=True, exist_ok=True)
                command = [sys.executable, "-m", "cifar_core", "export", "--all", "--cache-only"]
                command += ["--sample", str(BACKGROUND_SAMPLE)]
                command += ["--artifacts-dir", str(self.root)]
                with open(self.log, "ab") as out:
                    self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
            return self._process

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self, model_path: Path, timeout_s: float = 900.0, poll_s: float = 0.2) -> Path | None:
        """The export of ``model_path`` once it exists (None if the exporter ended without it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = find_export(model_path)
            if found is not None or not self.running():
                return found or find_export(model_path)
            time.sleep(poll_s)
        return None


def summary(report: dict) -> str:
    """One line on a parity report: size, agreement, difference and both latencies."""
    return (
        f"{report['bytes'] / 2**20:.1f} MB; on {report['n_images']:,} {report['checked_on']}: top-1 "
        f"agreement {report['top1_agreement']:.2%}, max probability difference "
        f"{report['max_prob_diff']:.1e}; ms per image at batch 500 / batch 1: Keras "
        f"{report['keras_ms_per_image']:.2f} / {report['keras_ms_batch1']:.1f}, ONNX Runtime "
        f"{report['export_ms_per_image']:.2f} / {report['export_ms_batch1']:.1f}"
    )


def recorded(runs) -> list[dict]:
    """One row per run with a model: its recorded ONNX parity report (``export`` writes it
    into the manifest), or what is missing."""
    rows = []
    for run in runs:
        if not run.has_model:
            continue
        report = (run.manifest.get("exports") or {}).get(FORMAT)
        rows.append(
            {
                "run": run.run_id,
                "ONNX MB": round(report["bytes"] / 2**20, 1) if report else None,
                "checked on": f"{report['n_images']:,} {report['checked_on']}" if report else "not exported",
                "top-1 agreement": f"{report['top1_agreement']:.2%}" if report else None,
                "max prob. diff": f"{report['max_prob_diff']:.1e}" if report else None,
                "Keras ms/img (batch 500)": report["keras_ms_per_image"] if report else None,
                "ONNX ms/img (batch 500)": report["export_ms_per_image"] if report else None,
            }
        )
    return rows


def describe_failure(error: Exception) -> str:
    kind = "cannot load the model" if isinstance(error, ModelLoadError) else "export failed"
    return f"{kind}: {error}"
