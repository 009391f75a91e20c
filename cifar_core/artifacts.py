"""Run folders: the only module that knows artifact file names.

    root = artifacts_root()                 # --artifacts-dir, $CIFAR_ARTIFACTS or ./artifacts
    run = read_run(root, "cnn_bn-1a2b3c4d") # validated; ArtifactError names the bad file
    ids = list_runs(root)                   # complete runs only

A run is written into a hidden temporary folder and renamed into ``runs/`` in one step
when complete, so readers never see half a run. Unfinished training (checkpoints, the
lock that keeps two trainers apart) lives under ``work/<run_id>/``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cifar_core.evaluate import confusion as confusion_counts

SCHEMA_VERSION = 1
RUNS = "runs"
WORK = "work"
MANIFEST = "manifest.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
PER_CLASS = "per_class.csv"
CONFUSION = "confusion_matrix.csv"
PREDICTIONS = "predictions.npz"
THUMBNAILS = "thumbnails.npz"
MODEL = "model.keras"
EVALUATIONS = "evaluations"
REQUIRED_FILES = (MANIFEST, HISTORY, METRICS, PER_CLASS, CONFUSION, PREDICTIONS, MODEL)
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TEMP_PREFIX = ".incomplete-"


class ArtifactError(ValueError):
    """A run folder or file is missing, corrupt or not allowed; the message names the path."""


class RunExistsError(ArtifactError):
    """A complete run with this id already exists."""


class RunLockedError(ArtifactError):
    """Another process is training this run id right now."""


@dataclass
class Run:
    """A complete, validated run. ``model_path`` is not loaded here (see inference.py)."""

    run_id: str
    path: Path
    manifest: dict[str, Any]
    history: pd.DataFrame
    metrics: dict[str, Any]
    per_class: pd.DataFrame
    confusion: np.ndarray
    # probs (N, K) float32, y_pred (N,) the float32 argmax, y_true (N,), test_ids (N,)
    predictions: dict[str, np.ndarray]
    # index (M,), images (M, 32, 32, 3) uint8 (stored as JPEGs, decoded by read_run)
    thumbnails: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    def evaluations(self) -> dict[str, dict]:
        folder = self.path / EVALUATIONS
        if not folder.is_dir():
            return {}
        return {p.stem: _read_json(p) for p in sorted(folder.glob("*.json"))}


def artifacts_root(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit``, else ``$CIFAR_ARTIFACTS``, else ``artifacts/`` in the project."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get("CIFAR_ARTIFACTS"):
        return Path(os.environ["CIFAR_ARTIFACTS"]).expanduser().resolve()
    return (Path(__file__).resolve().parent.parent / "artifacts").resolve()


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe folder name; ArtifactError otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        raise ArtifactError(
            f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' (no path parts)"
        )
    return run_id


def run_dir(root: Path, run_id: str) -> Path:
    runs = (Path(root) / RUNS).resolve()
    path = (runs / check_run_id(run_id)).resolve()
    if path.parent != runs:  # belt and braces against symlink tricks
        raise ArtifactError(f"run id {run_id!r} points outside {runs}")
    return path


def work_dir(root: Path, run_id: str) -> Path:
    return Path(root) / WORK / check_run_id(run_id)


def run_exists(root: Path, run_id: str) -> bool:
    return (run_dir(root, run_id) / MANIFEST).exists()


def list_runs(root: Path) -> list[str]:
    """Ids of the run folders in ``root/runs`` (complete ones: temporary folders are hidden)."""
    runs = Path(root) / RUNS
    if not runs.is_dir():
        return []
    return sorted(
        p.name
        for p in runs.iterdir()
        if p.is_dir() and not p.name.startswith(".") and RUN_ID_PATTERN.match(p.name)
    )


def load_runs(root: Path) -> tuple[list[Run], dict[str, str]]:
    """Every readable run, and for each unreadable one the reason."""
    good, bad = [], {}
    for run_id in list_runs(root):
        try:
            good.append(read_run(root, run_id))
        except ArtifactError as error:
            bad[run_id] = str(error)
    return good, bad


# --- writing -------------------------------------------------------------------------------


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: Path, value: Any) -> None:
    _atomic_bytes(path, json.dumps(value, indent=2, sort_keys=True, default=_json_default).encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def write_run(
    root: Path,
    run_id: str,
    *,
    manifest: dict[str, Any],
    history: pd.DataFrame,
    metrics: dict[str, Any],
    per_class: list[dict],
    confusion: np.ndarray,
    predictions: dict[str, np.ndarray],
    save_model: Callable[[Path], None],
    thumbnails: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a complete run folder atomically and return its path.

    Everything goes to ``runs/.incomplete-<id>-<random>/`` first, which is then renamed to
    ``runs/<id>``. If a run with that id appeared meanwhile, RunExistsError and nothing changes.
    """
    final = run_dir(root, run_id)
    if final.exists():
        raise RunExistsError(f"{final}: a run with this id already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TEMP_PREFIX}{run_id}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        manifest = {**manifest, "schema_version": SCHEMA_VERSION, "run_id": run_id}
        write_json(tmp / MANIFEST, manifest)
        _atomic_bytes(tmp / HISTORY, history.to_csv(index=False).encode())
        write_json(tmp / METRICS, metrics)
        _atomic_bytes(tmp / PER_CLASS, pd.DataFrame(per_class).to_csv(index=False).encode())
        names = manifest["class_names"]
        frame = pd.DataFrame(np.asarray(confusion, dtype=np.int64), index=names, columns=names)
        _atomic_bytes(tmp / CONFUSION, frame.to_csv(index_label="true\\predicted").encode())
        _atomic_bytes(
            tmp / PREDICTIONS,
            _npz_bytes(
                probs=np.asarray(predictions["probs"], dtype=np.float16),
                # argmax before the float16 rounding, which can tie two classes
                y_pred=np.asarray(predictions["probs"]).argmax(1).astype(np.int16),
                y_true=np.asarray(predictions["y_true"], dtype=np.int16),
                test_ids=np.asarray(predictions["test_ids"]).astype(str),
            ),
        )
        if thumbnails:
            _atomic_bytes(tmp / THUMBNAILS, thumbnail_bytes(thumbnails["index"], thumbnails["images"]))
        save_model(tmp / MODEL)
        try:
            os.rename(tmp, final)  # atomic; fails if another writer got there first
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise RunExistsError(f"{final}: another process finished this run first") from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def compact_keras_file(src: Path, dst: Path, dtype: str = "float16") -> dict[str, int]:
    """Copy a ``.keras`` file with its float32 weights stored as ``dtype``, gzip-compressed.

    The result is still a standard Keras file: ``keras.saving.load_model`` reads it and casts
    the weights back into the model's float32 variables, so a saved model takes about 45% of
    the disk space. Returns the sizes in bytes; ``dst`` appears atomically.
    """
    import h5py

    target = np.dtype(dtype)
    with zipfile.ZipFile(src) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    if "model.weights.h5" not in members:
        raise ArtifactError(f"{src}: no model.weights.h5 inside, not a Keras 3 model file")
    out = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as fin, h5py.File(out, "w") as fout:

        def copy(name: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset):
                data = item[()]
                if data.dtype == np.float32:
                    data = data.astype(target)
                big = data.ndim > 0 and data.size >= 256
                fout.create_dataset(name, data=data, compression="gzip" if big else None)
            else:
                fout.require_group(name)
            fout[name].attrs.update(dict(item.attrs))

        fin.visititems(copy)
        fout.attrs.update(dict(fin.attrs))
    members["model.weights.h5"] = out.getvalue()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    _atomic_bytes(dst, buffer.getvalue())
    return {"bytes_float32": src.stat().st_size, "bytes": dst.stat().st_size}


def thumbnail_bytes(index: np.ndarray, images: np.ndarray) -> bytes:
    """thumbnails.npz: test-set ``index`` (M,) and each image as a JPEG (quality 95, no chroma
    subsampling: under one grey level from the original on average, less than half the bytes),
    concatenated in ``jpeg`` with ``offsets`` (M + 1,)."""
    from PIL import Image

    blobs = []
    for image in np.asarray(images, dtype=np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=95, subsampling=0)
        blobs.append(buffer.getvalue())
    offsets = np.cumsum([0, *map(len, blobs)]).astype(np.int64)
    jpeg = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    return _npz_bytes(index=np.asarray(index, dtype=np.int32), jpeg=jpeg, offsets=offsets)


def compact_thumbnails(run_path: Path) -> bool:
    """Rewrite a run's raw-pixel thumbnails.npz (older runs) in the JPEG form; True if it did."""
    path = run_path / THUMBNAILS
    if not path.exists():
        return False
    arrays = _read_npz(path)
    if "images" not in arrays:
        return False
    _atomic_bytes(path, thumbnail_bytes(arrays["index"], arrays["images"]))
    return True


def _decode_thumbnails(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    from PIL import Image

    jpeg, offsets = arrays["jpeg"].tobytes(), arrays["offsets"]
    _require(
        offsets.ndim == 1 and offsets[0] == 0 and offsets[-1] == len(jpeg) and np.all(np.diff(offsets) > 0),
        path,
        "offsets do not match the JPEG bytes",
    )
    images = []
    try:
        for start, end in zip(offsets[:-1], offsets[1:]):
            with Image.open(io.BytesIO(jpeg[start:end]), formats=["JPEG"]) as image:
                _require(image.size[0] * image.size[1] <= 256 * 256, path, "thumbnail larger than 256x256")
                images.append(np.asarray(image.convert("RGB")))
    except ArtifactError:
        raise
    except Exception as error:
        raise ArtifactError(f"{path}: corrupt thumbnail ({type(error).__name__})") from None
    _require(len({i.shape for i in images}) <= 1, path, "thumbnails of different sizes")
    return np.stack(images) if images else np.zeros((0, 32, 32, 3), np.uint8)


def write_evaluation(root: Path, run_id: str, name: str, result: dict[str, Any]) -> Path:
    """Store the result of evaluating a saved run on other data as evaluations/<name>.json."""
    folder = run_dir(root, run_id) / EVALUATIONS
    folder.mkdir(exist_ok=True)
    path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('._') or 'evaluation'}.json"
    write_json(path, result)
    return path


@contextlib.contextmanager
def training_lock(root: Path, run_id: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``work/<run_id>/`` for as long as a trainer uses it.

    The OS drops the lock when the process dies (even by SIGKILL), so a killed run can be
    resumed at once, while a second live trainer of the same run id fails clearly.
    """
    import fcntl

    folder = work_dir(root, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / "lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RunLockedError(
            f"run {run_id!r} is being trained by another process right now ({folder}/lock)"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield folder
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


# --- reading -------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path}: corrupt JSON ({error})") from None


def _read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except Exception as error:  # pandas raises several parser errors
        raise ArtifactError(f"{path}: corrupt CSV ({type(error).__name__}: {error})") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except Exception as error:
        raise ArtifactError(f"{path}: corrupt array file ({type(error).__name__}: {error})") from None


def _require(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise ArtifactError(f"{path}: {message}")


def read_run(root: Path, run_id: str) -> Run:
    """Load and validate run ``run_id``; ArtifactError names the first bad file."""
    path = run_dir(root, run_id)
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such run")
    manifest = _read_json(path / MANIFEST)
    _validate_manifest(path / MANIFEST, manifest)
    k = len(manifest["class_names"])

    history = _read_csv(path / HISTORY)
    _require(
        {"epoch", "loss"} <= set(history.columns) and len(history) > 0,
        path / HISTORY,
        "needs epoch and loss columns and at least one row",
    )
    metrics = _read_json(path / METRICS)
    test = metrics.get("test") if isinstance(metrics, dict) else None
    _require(
        isinstance(test, dict)
        and isinstance(test.get("accuracy"), (int, float))
        and 0 <= test["accuracy"] <= 1,
        path / METRICS,
        "needs test.accuracy in [0, 1]",
    )
    per_class = _read_csv(path / PER_CLASS)
    _require(
        {"class", "precision", "recall", "f1", "support"} <= set(per_class.columns) and len(per_class) == k,
        path / PER_CLASS,
        f"needs {k} rows of class/precision/recall/f1/support",
    )
    confusion_frame = _read_csv(path / CONFUSION, index_col=0)
    confusion = confusion_frame.to_numpy()
    _require(
        confusion.shape == (k, k) and np.issubdtype(confusion.dtype, np.integer),
        path / CONFUSION,
        f"needs a {k}x{k} integer matrix, got {confusion.shape}",
    )
    predictions = _read_npz(path / PREDICTIONS)
    _validate_predictions(path / PREDICTIONS, predictions, k, confusion)
    thumbnails = _read_npz(path / THUMBNAILS) if (path / THUMBNAILS).exists() else {}
    if {"jpeg", "offsets"} <= set(thumbnails):
        thumbnails = {
            "index": thumbnails.get("index", np.empty(0)),
            "images": _decode_thumbnails(path / THUMBNAILS, thumbnails),
        }
    if thumbnails:
        n = len(predictions["y_true"])
        ok = (
            thumbnails.get("images", np.empty(0)).ndim == 4
            and "index" in thumbnails
            and len(thumbnails["index"]) == len(thumbnails["images"])
            and (thumbnails["index"].size == 0 or thumbnails["index"].max() < n)
        )
        _require(ok, path / THUMBNAILS, "needs index (M,) into the test set and images (M, H, W, 3)")
    model = path / MODEL
    _require(model.is_file(), model, "missing")
    _require(zipfile.is_zipfile(model), model, "not a .keras (zip) file")
    return Run(run_id, path, manifest, history, metrics, per_class, confusion, predictions, thumbnails)


def _validate_manifest(path: Path, manifest: Any) -> None:
    _require(isinstance(manifest, dict), path, "not a JSON object")
    version = manifest.get("schema_version")
    _require(version == SCHEMA_VERSION, path, f"schema_version {version!r}, this code reads {SCHEMA_VERSION}")
    for key in ("model", "class_names", "config", "data"):
        _require(key in manifest, path, f"missing key {key!r}")
    names = manifest["class_names"]
    _require(
        isinstance(names, list) and names and all(isinstance(n, str) for n in names),
        path,
        "class_names must be a non-empty list of strings",
    )


def _validate_predictions(path: Path, arrays: dict[str, np.ndarray], k: int, confusion: np.ndarray) -> None:
    for key in ("probs", "y_true", "test_ids"):
        _require(key in arrays, path, f"missing array {key!r}")
    probs, y_true, ids = arrays["probs"], arrays["y_true"], arrays["test_ids"]
    _require(probs.ndim == 2 and probs.shape[1] == k, path, f"probs must be (N, {k}), got {probs.shape}")
    n = probs.shape[0]
    _require(
        y_true.shape == (n,) and ids.shape == (n,),
        path,
        f"y_true and test_ids must have {n} entries, got {y_true.shape} and {ids.shape}",
    )
    n_expected = int(confusion.sum())
    _require(n == n_expected, path, f"{n} predictions but the confusion matrix counts {n_expected}")
    _require(n == 0 or (y_true.min() >= 0 and y_true.max() < k), path, "labels out of range")
    arrays["probs"] = probs.astype(np.float32)
    arrays["y_true"] = y_true.astype(np.int64)
    if "y_pred" in arrays:
        y_pred = arrays["y_pred"]
        _require(y_pred.shape == (n,), path, f"y_pred must have {n} entries, got {y_pred.shape}")
        _require(n == 0 or (y_pred.min() >= 0 and y_pred.max() < k), path, "y_pred out of range")
        y_pred = y_pred.astype(np.int64)
        matches = np.array_equal(confusion_counts(arrays["y_true"], y_pred, k), confusion)
        _require(matches, path, "y_pred does not match the confusion matrix")
    else:  # runs written before y_pred was stored
        y_pred = argmax_matching_confusion(arrays["probs"], arrays["y_true"], confusion)
    arrays["y_pred"] = y_pred


def argmax_matching_confusion(probs: np.ndarray, y_true: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """The argmax of stored (float16-rounded) probabilities, with ties broken towards the
    confusion matrix computed from the unrounded scores.

    Rounding to float16 can make two classes' probabilities equal where float32 had a
    winner; plain argmax then picks the lower class index and the page's accuracy differs
    from the run's metrics by an image or two. A tied image whose argmax lands in a cell the
    confusion matrix has too many of moves to a tied class whose cell has too few.
    """
    y_pred = probs.argmax(1)
    top = probs.max(1, keepdims=True)
    tied = np.flatnonzero((probs == top).sum(1) > 1)
    if tied.size == 0:
        return y_pred
    excess = confusion_counts(y_true, y_pred, probs.shape[1]) - confusion
    for i in tied:
        t, p = y_true[i], y_pred[i]
        if excess[t, p] <= 0:
            continue
        for c in np.flatnonzero(probs[i] == top[i, 0]):
            if excess[t, c] < 0:
                y_pred[i] = c
                excess[t, p] -= 1
                excess[t, c] += 1
                break
    return y_pred
