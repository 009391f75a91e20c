"""Load a run's model and classify images: shared by the CLI, evaluation and the dashboard.

    model = load_model(run.model_path)                     # Keras safe mode on
    predict = Predictor(model)                             # the one compiled inference call
    pixels = images.decode_image(uploaded_bytes)           # ImageError: a one-line reason
    probs = predict_probs(predict, pixels[None])

Saved models take raw uint8 32x32 RGB pixels and do their own scaling, so the only
preprocessing is the one decoder's (``images.py``), whatever image came in. Every
prediction (training's scores, ``evaluate``, ``classify``, ``benchmark``'s latency, the
dashboard) goes through a ``Predictor``, so their figures cannot drift apart.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import numpy as np

from cifar_core.errors import ModelLoadError


def load_model(path: str | os.PathLike, code: tuple[Path, ...] | list[Path] = ()):
    """Load a saved ``.keras`` model with Keras safe mode on (no arbitrary code).

    ``code``: files of the run's own stored code (its custom layers) to import first. The
    engine passes them only when the person asked for it (``--trust-code``, the dashboard's
    switch): importing a file runs it.
    """
    import keras

    import cifar_core.models  # noqa: F401  (registers the zoo's own layers, e.g. ImageNetPreprocess)

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file missing")
    custom = {}
    for file in code:
        custom.update(_custom_layers(Path(file)))
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True, custom_objects=custom)
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "safe_mode" in str(error) or "lambda" in str(error).lower():
            message = "refused: the model contains code (Lambda layer) and safe mode is on"
        elif ("Could not locate" in str(error) or "Unknown" in str(error)) and not code:
            found = [f.name for f in Path(path).parent.joinpath("source").glob("*.py")]
            where = f"its stored code {', '.join(found)}" if found else "the code that defines them"
            message = (
                f"it has custom layers: loading them runs {where} (--trust-code, or the dashboard's switch)"
            )
        raise ModelLoadError(f"{path}: cannot load model ({message[:300]})") from None


def _custom_layers(file: Path) -> dict:
    """Import ``file`` (a run's stored code) and return the Keras layer classes it defines."""
    import types

    import keras

    module = types.ModuleType(f"cifar_run_code_{abs(hash(str(file.resolve())))}")
    module.__file__ = str(file)
    try:
        exec(compile(file.read_bytes(), str(file), "exec"), module.__dict__)  # noqa: S102 -- trusted by the user
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(
            f"{file}: importing the run's code failed: {type(error).__name__}: {error}"
        ) from None
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, keras.layers.Layer)
    }


class _Batched:
    """What every predictor does with a batch of images: uint8 (N, H, W, C) in, float32
    probabilities out, through ``_run`` in chunks of ``batch_size``."""

    batch_size: int
    input_dtype: type
    input_shape: tuple

    def _run(self, chunk: np.ndarray):
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        parts = [
            np.asarray(self._run(x[i : i + self.batch_size]), dtype=np.float32)
            for i in range(0, len(x), self.batch_size)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def warm(self):
        """Run once on one blank image, so the next call is inference only."""
        self(np.zeros((1, *self.input_shape), self.input_dtype))
        return self


class Predictor(_Batched):
    """A model's one compiled inference call: uint8 images (N, H, W, C) in, float32 out.

    One ``tf.function`` of ``model(x, training=False)``, traced once for a batch-free input
    signature, so batch 1 (an upload) and batch 500 (evaluation) share one graph and no call
    ever retraces; inputs go through in chunks of ``batch_size``. The traced function keeps
    no Python state between calls and only reads the weights, so several threads may call
    one Predictor at once (TensorFlow runs concurrent calls of a function safely; a test
    checks that threads get the serial results).
    """

    def __init__(self, model, batch_size: int = 500):
        import tensorflow as tf

        self.model = model
        self.batch_size = batch_size
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.as_dtype(model.inputs[0].dtype))
        self._call = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        self.input_dtype = spec.dtype.as_numpy_dtype
        self.input_shape = tuple(model.input_shape[1:])

    def _run(self, chunk: np.ndarray):
        return self._call(chunk)

    def warm(self) -> Predictor:
        """Trace and run once (about 1 s for Lite0 here), so the next call is inference only."""
        return super().warm()


class OnnxPredictor(_Batched):
    """An exported model (``exports.py``) served by ONNX Runtime: the ``Predictor``
    interface (uint8 images (N, H, W, C) in, float32 probabilities out, in chunks of
    ``batch_size``) without TensorFlow. ``model`` is None: gradients and features need the
    Keras model. ONNX Runtime's ``run`` may be called from several threads at once."""

    model = None

    def __init__(self, path: str | os.PathLike, batch_size: int = 500):
        import onnxruntime

        self.path = Path(path)
        self.batch_size = batch_size
        try:
            self._session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 -- onnxruntime raises its own kinds
            raise ModelLoadError(
                f"{path}: cannot load the export ({str(error).splitlines()[0][:200]})"
            ) from None
        spec = self._session.get_inputs()[0]
        self._input = spec.name
        self.input_shape = tuple(spec.shape[1:])
        self.input_dtype = np.uint8 if spec.type == "tensor(uint8)" else np.float32

    def _run(self, chunk: np.ndarray):
        return self._session.run(None, {self._input: chunk})[0]


def as_predictor(model):
    """A Keras model becomes its ``Predictor``; a Predictor (or any callable from images to
    outputs, e.g. a test's stand-in) is used as it is."""
    return Predictor(model) if hasattr(model, "inputs") and not isinstance(model, Predictor) else model


class PredictorPool:
    """Predictors of saved models, loaded one after another in a background thread.

    ``preload(paths)`` queues models (kept per path and modification time); ``get(path)``
    waits for a queued model, or queues it first, and re-raises its ``ModelLoadError``;
    ``ready(path)`` does not wait; ``progress(paths)`` says how many are ready. One loader
    thread: loading is CPU-bound, so a second thread gains little, and the first queued
    is the first ready.

    ``exported=True`` serves each model from its checked ONNX export (``exports.py``:
    no TensorFlow, a tenth of the load time), waiting for ``exporter`` (a
    ``exports.BackgroundExport``) when it is making the export; a model without a usable
    export falls back to its Keras model, with one warning naming the model (kept in
    ``fallbacks``). ``exported=False`` always loads the Keras model (for gradients).
    """

    def __init__(self, exported: bool = False, exporter=None):
        self._lock = threading.Lock()
        self._futures: dict[str, tuple[int, Future]] = {}
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self.exported = exported
        self.exporter = exporter
        self.fallbacks: dict[str, str] = {}  # model path -> why its export is not used

    def _load(self, path: str, code: tuple[Path, ...]):
        if self.exported:
            from cifar_core.artifacts.exported import find_export

            found = find_export(path)
            if found is None and self.exporter is not None and self.exporter.running():
                found = self.exporter.wait(Path(path))
            reason = "it has no checked export (python -m cifar_core export)"
            if found is not None:
                try:
                    return OnnxPredictor(found).warm()
                except ModelLoadError as error:
                    reason = str(error)
            elif not code and _stored_code(path):
                # Keras could not load it without importing that code: say so, no TensorFlow.
                names = ", ".join(f.name for f in _stored_code(path))
                raise ModelLoadError(
                    f"{path}: cannot load model (it has custom layers: loading them runs its stored "
                    f"code {names} (--trust-code, or the dashboard's switch))"
                )
            self.fallbacks[path] = reason
            warnings.warn(f"{path}: served by Keras: {reason}", stacklevel=2)
        return Predictor(load_model(path, code)).warm()

    def _future(self, path, code: tuple[Path, ...] = ()) -> Future:
        """``code``: the run's stored code to import first (only when trusted), part of the key."""
        key = (str(path), tuple(str(c) for c in code))
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            mtime = -1  # missing: load_model says so when the future runs
        with self._lock:
            known = self._futures.get(key)
            if known is None or known[0] != mtime:  # new, or the file changed
                known = (mtime, self._loader.submit(self._load, str(path), tuple(code)))
                self._futures[key] = known
            return known[1]

    def preload(self, paths) -> None:
        for path in paths:
            self._future(path)

    def get(self, path, code: tuple[Path, ...] = ()):
        return self._future(path, code).result()

    def ready(self, path, code: tuple[Path, ...] = (), timeout: float = 0.0):
        """The loaded Predictor, None while it is loading (queued if new) after waiting up to
        ``timeout`` seconds; a failed load raises its ``ModelLoadError``. For pages that
        answer with the models they have."""
        future = self._future(path, code)
        try:
            return future.result(timeout=timeout) if timeout > 0 or future.done() else None
        except FutureTimeout:
            return None

    def progress(self, paths) -> tuple[int, int]:
        """(models ready or failed, models asked for) among ``paths``, queueing any new."""
        futures = [self._future(path) for path in paths]
        return sum(f.done() for f in futures), len(futures)


def _stored_code(model_path: str) -> list[Path]:
    """The run's own code files beside its model (``source/*.py``), if any."""
    from cifar_core.artifacts.reading import SOURCE

    folder = Path(model_path).parent / SOURCE
    return sorted(folder.glob("*.py")) if folder.is_dir() else []


def flip_batch(x: np.ndarray) -> np.ndarray:
    return x[:, :, ::-1, :]


def translate_batch(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift images by (dy, dx) pixels with reflect padding."""
    pad = max(abs(dy), abs(dx))
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    return padded[:, pad - dy : pad - dy + h, pad - dx : pad - dx + w, :]


def predict_probs(model, x: np.ndarray, tta: str = "none") -> np.ndarray:
    """Class probabilities (N, K) float32 of a model or ``Predictor``, averaged over
    test-time augmentations.

    tta: "none"; "flip" (image and its mirror, equal weights); "flip_translate" (airbench's
    level 2: half the weight on the image and its mirror, half on both shifted by one pixel
    up-left and down-right, reflect-padded: six views).
    """
    predict = as_predictor(model)
    views = [(x, 1.0)]
    if tta == "flip":
        views = [(x, 0.5), (flip_batch(x), 0.5)]
    elif tta == "flip_translate":
        views = [(x, 0.25), (flip_batch(x), 0.25)]
        for shift in (-1, 1):
            moved = translate_batch(x, shift, shift)
            views += [(moved, 0.125), (flip_batch(moved), 0.125)]
    total = None
    for view, weight in views:
        probs = weight * predict(view)
        total = probs if total is None else total + probs
    return total.astype(np.float32)


def classify(model, images: list[np.ndarray], class_names: list[str], top_k: int = 3) -> list[dict]:
    """Classify uint8 32x32x3 arrays as one batch (a model or a warm ``Predictor``): per
    image the probabilities, top-k and the model time per image."""
    predict = as_predictor(model)
    batch = np.stack(images).astype(np.uint8)
    start = time.perf_counter()
    probs = predict(batch)
    ms_per_image = (time.perf_counter() - start) * 1000 / len(images)
    results = []
    for row in probs:
        order = np.argsort(-row)[:top_k]
        results.append(
            {
                "probs": {name: float(p) for name, p in zip(class_names, row)},
                "top": [(class_names[i], float(row[i])) for i in order],
                "ms_per_image": ms_per_image,
            }
        )
    return results


def evaluate_folder(artifacts_dir, run_id: str, data_dir, name: str | None = None, trust_code: bool = False):
    """Score a saved run on a labelled image folder (with the run's TTA) and store the result
    as ``evaluations/<name>.json`` (default name: the folder's). ``trust_code`` imports the
    run's stored code to load its custom layers. Returns (run id, result, path)."""
    from pathlib import Path

    from cifar_core import artifacts, evaluate
    from cifar_core.data.folders import load_labelled_folder

    root = artifacts.artifacts_root(artifacts_dir)
    run = artifacts.read_run(root, run_id)
    x, y, _ = load_labelled_folder(data_dir, run.class_names)
    code = run.code_files if trust_code else ()
    probs = predict_probs(Predictor(load_model(run.model_path, code)), x, run.manifest["config"]["tta"])
    result = evaluate.classification_metrics(y, probs, run.class_names)
    result.update(
        {
            "data_dir": artifacts.relative_path(data_dir, root),
            "n_images": int(len(y)),
            "per_class": evaluate.per_class_report(y, probs.argmax(1), run.class_names),
        }
    )
    path = artifacts.write_evaluation(root, run.run_id, name or Path(data_dir).resolve().name, result)
    return run.run_id, result, path
