"""Where a model's ONNX export lives and whether it may be served (``cifar_core.serving.exports``
makes them; ``inference.PredictorPool`` serves them).

    path = find_export(run.model_path)   # <cache>/exports/<sha256 of model.keras>.onnx, checked

Keyed by the model file's content, so an export follows its model through a clone, a copy
or a rename, and a changed model file is never served by an old export. Beside each export,
``<same>.json`` is its parity report; only an export whose report passed is found.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

FORMAT = "onnx"
# An export is served only if its probabilities stay this close to the Keras model's and
# it agrees on every top-1 among the images it was checked on.
MAX_PROB_DIFF = 1e-4
EXPORTS = "exports"

_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGEST_LOCK = threading.Lock()


def exports_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    from cifar_core.data import default_cache_dir

    return Path(cache_dir) if cache_dir is not None else default_cache_dir() / EXPORTS


def model_digest(model_path: str | os.PathLike) -> str:
    """The sha256 of a model file, hashed once per (path, size, modification time)."""
    path = Path(model_path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _DIGEST_LOCK:
        known = _DIGESTS.get(key)
    if known is None:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        known = digest.hexdigest()
        with _DIGEST_LOCK:
            _DIGESTS[key] = known
    return known


def export_path(model_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the export of this model file goes (whether or not it exists yet)."""
    return exports_dir(cache_dir) / f"{model_digest(model_path)}.{FORMAT}"


def report_path(export: Path) -> Path:
    return export.with_suffix(".json")


def read_report(export: Path) -> dict | None:
    """The parity report stored beside an export (None when missing or unreadable)."""
    try:
        return json.loads(report_path(export).read_text())
    except (OSError, ValueError):
        return None


def passed(report: dict | None) -> bool:
    return (
        bool(report)
        and report.get("max_prob_diff", 1.0) <= MAX_PROB_DIFF
        and (report.get("top1_agreement") == 1.0)
    )


def find_export(model_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The export of this exact model file if one was made and passed its parity check."""
    try:
        path = export_path(model_path, cache_dir)
    except OSError:
        return None
    return path if path.is_file() and passed(read_report(path)) else None


def missing(model_paths, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """The model files among ``model_paths`` without a checked export."""
    return [Path(p) for p in model_paths if Path(p).is_file() and find_export(p, cache_dir) is None]
