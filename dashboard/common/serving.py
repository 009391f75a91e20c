"""The models behind the pages, loaded once per server process and shared by all sessions.

- one ``inference.PredictorPool`` serving predictions from the models' checked ONNX exports
  (``cifar_core.serving.exports``): loaded in the background from the first visit, no
  TensorFlow in the server. Models without an export on this machine are exported once, by
  ``python -m cifar_core export --all --cache-only`` in a separate process that the first
  visit starts; one whose export fails falls back to Keras.
- a second pool of Keras models, loaded only for gradients and features (the "Why?"
  heatmaps, a map upload): that is when TensorFlow is imported, in the loader thread, and
  Streamlit is kept from clearing its compiled kernels after every rerun
  (``_keep_compiled_models``).
- the sidebar's "Trust stored code" switch: which runs' stored code this session imports.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import streamlit as st

from cifar_core import artifacts
from cifar_core.artifacts import Run
from cifar_core.serving.inference import OnnxPredictor, Predictor, PredictorPool
from common import admin
from common.loading import artifacts_dir, load_runs, mtime_ns


def _keep_compiled_models() -> None:
    """Stop Streamlit from calling ``keras.backend.clear_session()`` after every script run.

    Streamlit does that for every app that has imported Keras (``_clean_problem_modules``
    in ``streamlit/runtime/scriptrunner/script_runner.py``, no setting turns it off). With
    TensorFlow it clears the kernel cache, so every model's next call re-optimises its
    whole graph (Grappler and the oneDNN rewrite): 0.2-1.2 s per model per rerun instead
    of 2-30 ms, and a rerun in one session wipes the cache under the others. The dashboard
    never builds models per run (they are loaded once and shared), which is what
    ``clear_session`` is for, so the hook keeps only its matplotlib part.
    """
    import sys

    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:  # a Streamlit without that module has no such hook to undo
        return
    if getattr(script_runner._clean_problem_modules, "keeps_keras", False):
        return

    def clean_problem_modules_but_keras() -> None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close("all")

    clean_problem_modules_but_keras.keeps_keras = True
    script_runner._clean_problem_modules = clean_problem_modules_but_keras


_keep_compiled_models()


@st.cache_resource(show_spinner=False)
def _exporter(root: str):
    from cifar_core.serving.exports import BackgroundExport

    return BackgroundExport(Path(root))


@st.cache_resource(show_spinner=False)
def _pool(root: str) -> PredictorPool:
    """The exported models that serve every prediction (one pool per artifacts root)."""
    return PredictorPool(exported=True, exporter=_exporter(root))


@st.cache_resource(show_spinner=False)
def _keras_pool() -> PredictorPool:
    """Keras models, for the pages that need gradients or features (TensorFlow loads here)."""
    return PredictorPool()


def zoo_model_paths() -> list[Path]:
    """The model files of the zoo's runs (a lean run has none)."""
    runs, _ = load_runs()
    return [run.model_path for run in runs if run.has_model]


_PRELOAD = threading.Event()


def preload_models() -> None:
    """Once per process, after the first page is drawn: on a machine without the zoo's
    exports, start making them in a separate process (``BackgroundExport``; once per machine,
    a minute or two), so that the server never imports TensorFlow to classify (importing it
    holds Python's GIL for seconds and froze the pages while they were drawn). Loading the
    exports waits for a page that needs them (Classify queues them all as it opens: 13 load
    in about 0.2 s), so no other page's first visit shares the CPU with a loader thread."""
    if _PRELOAD.is_set():
        return
    _PRELOAD.set()
    try:
        from cifar_core.serving import exports

        paths = zoo_model_paths()
        if exports.missing(paths):
            _exporter(str(artifacts_dir())).start()
    except Exception:  # never break a page over preloading: predictor_for() reports errors
        pass


def exporting() -> bool:
    """Whether the one-time export of this machine's models is running (the first visit)."""
    return _exporter(str(artifacts_dir())).running()


def served_by_keras() -> dict[str, str]:
    """Model files served by Keras instead of their export, with the reason (one each)."""
    return dict(_pool(str(artifacts_dir())).fallbacks)


def models_ready(paths: list[Path] | None = None) -> tuple[int, int]:
    """(models loaded, models) among ``paths`` (default: the zoo's), for a progress bar."""
    return _pool(str(artifacts_dir())).progress(zoo_model_paths() if paths is None else paths)


def predictor_for(run: Run, wait: bool | float = True) -> OnnxPredictor | Predictor | None:
    """The run's warm predictor (its checked ONNX export, else its Keras model), loaded once
    per process with safe mode on and shared by all sessions; safe to call from several
    threads at once. Waits while the model loads (``wait=False``: None instead; a number:
    None after waiting that many seconds); raises ``ModelLoadError``."""
    pool = _pool(str(artifacts_dir()))
    code = code_for(run)
    if wait is True:
        return pool.get(run.model_path, code)
    return pool.ready(run.model_path, code, timeout=float(wait))


TRUST_KEY = "trust_code"  # the sidebar switch: import runs' stored code to load their models


def code_for(run: Run) -> tuple[Path, ...]:
    """The run's stored code when this session trusts it (the sidebar switch, off by
    default), else nothing: the engine imports no run's code unless the person asks."""
    return run.code_files if st.session_state.get(TRUST_KEY) and admin.may_change() else ()


def trust_switch(runs: list[Run]) -> None:
    """The sidebar switch that lets this session import runs' stored code, naming the files."""
    with_code = [(run.label, [f.name for f in run.code_files]) for run in runs if run.code_files]
    if not with_code or not admin.may_change():  # beyond the loopback: the admin token first
        return
    files = "; ".join(f"{label}: {', '.join(names)}" for label, names in with_code)
    st.toggle(
        "Trust stored code",
        value=False,
        key=TRUST_KEY,
        help=f"Load models with custom layers by importing the code stored with their run ({files}). "
        "Importing a file runs it: only for code you trust.",
    )
    if st.session_state.get(TRUST_KEY):
        st.caption(f"Runs the stored code of {files}")


@st.cache_resource(
    show_spinner="Preparing heatmaps: loading the Keras model (TensorFlow loads once per server)…",
    max_entries=32,
)
def _explainer(path: str, mtime_ns: int, code: tuple[str, ...] = ()):
    from cifar_core.analysis import saliency

    # One lock per explainer: a heatmap reuses the explainer's gradient function.
    keras_model = _keras_pool().get(path, tuple(Path(c) for c in code)).model
    return saliency.explainer(keras_model), threading.Lock()


@st.cache_data(show_spinner=False, max_entries=2000)
def _heatmap(
    path: str, mtime_ns: int, image_bytes: bytes, class_id: int, code: tuple[str, ...] = ()
) -> np.ndarray:
    from cifar_core.analysis import saliency

    pixels = np.frombuffer(image_bytes, np.uint8).reshape(32, 32, 3)
    explain, lock = _explainer(path, mtime_ns, code)
    with lock:
        return saliency.heatmaps(explain, pixels[None], classes=None if class_id < 0 else [class_id])[0]


def heatmap_for(run: Run, pixels: np.ndarray, class_id: int | None = None) -> tuple[np.ndarray, str]:
    """(32x32 heatmap, how it was made) of ``run``'s model for ``class_id`` (None: its top
    class), computed by the engine on demand and cached per model, image and class."""
    path = run.model_path
    mtime = path.stat().st_mtime_ns
    code = tuple(str(c) for c in code_for(run))
    explain, _ = _explainer(str(path), mtime, code)
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    heat = _heatmap(str(path), mtime, pixels.tobytes(), -1 if class_id is None else int(class_id), code)
    where = f" on {explain.layer} ({explain.map_size[0]}x{explain.map_size[1]})" if explain.layer else ""
    return heat, f"{explain.method}{where}"


@st.cache_resource(show_spinner="Listing the layers and counting FLOPs…", max_entries=32)
def _architecture(run_path: str, mtime: int | None, code: tuple[str, ...], _run: Run):
    from cifar_core.analysis import runcard

    return runcard.architecture_of(_run, tuple(Path(c) for c in code))


def architecture_for(run: Run):
    """(layer table, totals) of the run's model, as stored with the run, else computed by the
    engine once per model file (a run without one: its config's architecture). Raises
    CifarError when unavailable."""
    stored = run.path / artifacts.ARCHITECTURE
    source = (
        stored if stored.is_file() else run.model_path if run.has_model else run.path / artifacts.MANIFEST
    )
    return _architecture(str(run.path), mtime_ns(source), tuple(str(p) for p in code_for(run)), run)


def measure_cost(run: Run) -> dict:
    """Batch-1 latency, batch-500 throughput and one prediction's memory of the run's model,
    through the same Predictor the pages use."""
    from cifar_core.analysis import architecture

    return architecture.measure_cost(predictor_for(run))


@st.cache_resource(
    show_spinner="Preparing the feature extractor: loading the Keras model (TensorFlow, once per server)…",
    max_entries=32,
)
def _extractor(path: str, mtime_ns: int, code: tuple[str, ...] = ()) -> Predictor:
    from cifar_core.analysis import embeddings

    model = _keras_pool().get(path, tuple(Path(c) for c in code)).model
    return Predictor(embeddings.feature_model(model)).warm()


def features_for(run: Run, pixels: np.ndarray) -> np.ndarray:
    """Penultimate-layer features of uint8 32x32 images by the run's model (the engine's)."""
    from cifar_core.analysis import embeddings

    path = run.model_path
    code = tuple(str(c) for c in code_for(run))
    return embeddings.features(_extractor(str(path), path.stat().st_mtime_ns, code), pixels)
