"""What every page shares: cached run loading, cached models, test images, empty states.

Runs are read only through ``cifar_core.artifacts`` and models loaded only through
``cifar_core.inference``; this module adds Streamlit caching on top:
- ``st.cache_resource`` for runs (shared, read-only), keyed by the stat() of each run's
  files, so a new or changed run shows up on the next rerun without a restart;
- one ``inference.PredictorPool`` per process serving predictions from the models' checked
  ONNX exports (``cifar_core.exports``): loaded in the background from the first visit,
  shared by all sessions, no TensorFlow in the server. Models without an export on this
  machine are exported once, by ``python -m cifar_core export --all --cache-only`` in a
  separate process that the first visit starts; one whose export fails falls back to Keras.
- a second pool of Keras models, loaded only for gradients and features (the "Why?"
  heatmaps, a map upload): that is when TensorFlow is imported, in the loader thread, and
  Streamlit is kept from clearing its compiled kernels after every rerun
  (``_keep_compiled_models``).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from cifar_core import artifacts
from cifar_core.artifacts import Run
from cifar_core.inference import OnnxPredictor, Predictor, PredictorPool


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


def artifacts_dir() -> Path:
    return artifacts.artifacts_root()


READ_ONLY_ENV = "CIFAR_DASHBOARD_READ_ONLY"


def read_only() -> bool:
    """Started to only read (``CIFAR_DASHBOARD_READ_ONLY=1``, or ``streamlit run
    dashboard/app.py -- --read-only``): no page changes anything on disk."""
    flag = os.environ.get(READ_ONLY_ENV, "").strip().lower() not in ("", "0", "false", "no")
    return flag or "--read-only" in sys.argv[1:]


@st.cache_resource(show_spinner="Reading runs…", max_entries=8)
def _load(root: str, signature: tuple) -> tuple[list[Run], dict[str, str]]:
    # cache_resource, not cache_data: cache_data would unpickle every run's arrays (test
    # predictions, thumbnails: megabytes each) on every rerun of every session. The runs
    # are shared read-only: pages never modify them.
    return artifacts.load_runs(Path(root))


def load_runs(ladders: bool = False) -> tuple[list[Run], dict[str, str]]:
    """Every readable zoo run (sorted by test accuracy; with ``ladders``, the ladders' rungs
    instead) and the reasons the unreadable ones are not."""
    root = artifacts_dir()
    runs, bad = _load(str(root), artifacts.runs_signature(root))
    runs = [run for run in runs if artifacts.is_ladder_run(run) == ladders]
    return sorted(runs, key=lambda r: -r.metrics["test"]["accuracy"]), bad


def run_label(run: Run) -> str:
    """The run in a picker: its label, test accuracy and run id (once)."""
    accuracy = f"{run.metrics['test']['accuracy']:.2%}"
    return f"{run.label} · {accuracy}" if run.label_shared else f"{run.label} · {accuracy} · {run.run_id}"


def by_label(runs: list[Run]) -> dict[str, Run]:
    """The runs keyed by their picker label (``run_label``), in order: what pickers offer."""
    return {run_label(r): r for r in runs}


def pick_run(runs: list[Run], prompt: str, key: str, index: int = 0) -> Run:
    """One run chosen in a select box labelled ``prompt`` (``key``: its widget key)."""
    labels = by_label(runs)
    return labels[st.selectbox(prompt, list(labels), index=index, key=key)]


def require_runs(minimum: int = 1) -> list[Run] | None:
    """The runs, or None after telling the user how to get (enough of) them."""
    runs, bad = load_runs()
    if bad:
        with st.expander(f"{len(bad)} unreadable run(s)", icon=":material/warning:"):
            for run_id, reason in bad.items():
                st.write(f"**{run_id}**: {reason}")
    if len(runs) >= minimum:
        return runs
    if not runs:
        st.info(
            f"No runs in `{artifacts_dir()}` yet. Train one, then reload this page:\n\n"
            "```bash\npython -m cifar_core train --model fast --data-dir /path/to/cifar10\n```\n"
            "or point the dashboard at another folder with `CIFAR_ARTIFACTS=/path/to/artifacts`."
        )
    else:
        st.info(f"This page needs at least {minimum} runs; there is {len(runs)}.")
    return None


def same_test_set(runs: list[Run]) -> list[Run]:
    """The runs scored on the largest group of identical test sets (comparable per image)."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        key = (run.manifest["data"]["checksum"], len(run.predictions["y_true"]))
        groups.setdefault(key, []).append(run)
    return max(groups.values(), key=len) if groups else []


def correct_matrix(runs: list[Run]) -> np.ndarray:
    """(models, images) booleans: which run gets which test image right."""
    return np.stack([r.predictions["y_pred"] == r.predictions["y_true"] for r in runs])


@st.cache_resource(show_spinner=False)
def _exporter(root: str):
    from cifar_core.exports import BackgroundExport

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
    """Once per process, at the first visit to any page: start loading every zoo model's
    export in a background thread (smallest files first), so that the first upload finds
    them ready. A model without an export here is exported first, by a separate process
    (``BackgroundExport``; once per machine, a minute or two), so the server never
    imports TensorFlow to classify: importing it holds Python's GIL for seconds and froze
    the pages while they were being drawn."""
    if _PRELOAD.is_set():
        return
    _PRELOAD.set()
    try:
        from cifar_core import exports

        paths = sorted(zoo_model_paths(), key=lambda path: path.stat().st_size)
        root = str(artifacts_dir())
        if exports.missing(paths):
            _exporter(root).start()
        _pool(root).preload(paths)
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


def predictor_for(run: Run, wait: bool = True) -> OnnxPredictor | Predictor | None:
    """The run's warm predictor (its checked ONNX export, else its Keras model), loaded once
    per process with safe mode on and shared by all sessions; safe to call from several
    threads at once. Waits while the model loads (``wait=False``: None instead); raises
    ``ModelLoadError``."""
    pool = _pool(str(artifacts_dir()))
    code = code_for(run)
    return pool.get(run.model_path, code) if wait else pool.ready(run.model_path, code)


TRUST_KEY = "trust_code"  # the sidebar switch: import runs' stored code to load their models


def code_for(run: Run) -> tuple[Path, ...]:
    """The run's stored code when this session trusts it (the sidebar switch, off by
    default), else nothing: the engine imports no run's code unless the person asks."""
    return run.code_files if st.session_state.get(TRUST_KEY) else ()


def trust_switch(runs: list[Run]) -> None:
    """The sidebar switch that lets this session import runs' stored code, naming the files."""
    with_code = [(run.label, [f.name for f in run.code_files]) for run in runs if run.code_files]
    if not with_code:
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
    from cifar_core import saliency

    # One lock per explainer: a heatmap reuses the explainer's gradient function.
    keras_model = _keras_pool().get(path, tuple(Path(c) for c in code)).model
    return saliency.explainer(keras_model), threading.Lock()


@st.cache_data(show_spinner=False, max_entries=2000)
def _heatmap(
    path: str, mtime_ns: int, image_bytes: bytes, class_id: int, code: tuple[str, ...] = ()
) -> np.ndarray:
    from cifar_core import saliency

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


def available_test_indices(run: Run) -> np.ndarray:
    """Test images that can be shown here: all if the data is on this machine, else thumbnails."""
    return artifacts.available_test_indices(run)


def test_images(run: Run, indices) -> list[np.ndarray | None]:
    """32x32 test images by index, decoded by the engine (None where not available here)."""
    return artifacts.test_images(run, indices)


def image_grid(images: list, captions: list[str], columns: int = 8) -> None:
    """Show images in a grid; missing images become a short note."""
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, image, caption in zip(
            cols, images[start : start + columns], captions[start : start + columns]
        ):
            with col:
                show_image(image, caption)


def show_image(image, caption: str) -> None:
    """One image with its caption, or the caption and a note when it is not available."""
    if image is None:
        st.caption(f"(image not available) {caption}")
    else:
        st.image(image, caption=caption, width="stretch")


def heatmap_grid(pixels: np.ndarray, wanted: list[tuple[Run, str, str]], columns: int) -> None:
    """For each (run, class name, caption) in ``wanted``: the run's heatmap for that class
    over ``pixels``, in a grid of at most ``columns``; a run that cannot explain says why."""
    from cifar_core.errors import CifarError
    from cifar_core.saliency import overlay

    images, captions = [], []
    for run, class_name, caption in wanted:
        try:
            heat, how = heatmap_for(run, pixels, run.class_names.index(class_name))
        except (CifarError, ValueError) as error:
            images.append(None)
            captions.append(f"{run.label}: no heatmap ({error})")
            continue
        images.append(overlay(np.asarray(pixels, dtype=np.uint8), heat))
        captions.append(f"{caption} · {how}")
    image_grid(images, captions, columns=min(columns, max(len(images), 1)))


def confusion_change_figure(before: Run, after: Run, title: str):
    """``after``'s confusion matrix minus ``before``'s, each cell's count change written in
    it and coloured by what it means: blue where ``after`` is better (more right on the
    diagonal, fewer of a mistake off it), red where it is worse; the legend says so."""
    import plotly.graph_objects as go

    from cifar_core.evaluate import confusion_change

    change, better = confusion_change(before.confusion, after.confusion)
    names = list(after.class_names)
    limit = max(int(np.abs(change).max()), 1)
    fig = go.Figure(
        go.Heatmap(
            z=better,
            x=names,
            y=names,
            text=[[f"{v:+d}" if v else "0" for v in row] for row in change],
            texttemplate="%{text}",
            colorscale="RdBu",
            zmin=-limit,
            zmax=limit,
            colorbar={"title": {"text": "blue: better<br>red: worse"}},
            hovertemplate="true %{y}, predicted %{x}: %{text} images<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    return fig


@st.cache_resource(show_spinner="Listing the layers and counting FLOPs…", max_entries=32)
def _architecture(run_path: str, mtime: int | None, code: tuple[str, ...], _run: Run):
    from cifar_core import architecture, runcard

    model = runcard.model_for(_run, tuple(Path(c) for c in code))
    table = architecture.layer_table(model)
    return table, architecture.totals(table)


def architecture_for(run: Run):
    """(layer table, totals) of the run's model, computed by the engine once per model file
    (a run without one: its config's architecture). Raises CifarError when unavailable."""
    source = run.model_path if run.has_model else run.path / "manifest.json"
    return _architecture(str(run.path), _mtime(source), tuple(str(p) for p in code_for(run)), run)


def measure_cost(run: Run) -> dict:
    """Batch-1 latency, batch-500 throughput and one prediction's memory of the run's model,
    through the same Predictor the pages use."""
    from cifar_core import architecture

    return architecture.measure_cost(predictor_for(run))


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@st.cache_resource(show_spinner=False, max_entries=64)
def _analysis(run_path: str, name: str, mtime: int | None, _run: Run):
    read = {artifacts.EMBEDDING: artifacts.read_embedding, artifacts.DATA_FACTS: artifacts.read_data_facts}
    return read[name](_run)


def embedding_for(run: Run) -> dict | None:
    """The run's stored map of the test set (None: it has none; ArtifactError: bad file)."""
    return _analysis(str(run.path), artifacts.EMBEDDING, _mtime(run.path / artifacts.EMBEDDING), run)


def data_facts_for(run: Run) -> dict | None:
    """The data facts stored with the run (None: it has none; ArtifactError: bad file)."""
    return _analysis(str(run.path), artifacts.DATA_FACTS, _mtime(run.path / artifacts.DATA_FACTS), run)


@st.cache_resource(
    show_spinner="Preparing the feature extractor: loading the Keras model (TensorFlow, once per server)…",
    max_entries=32,
)
def _extractor(path: str, mtime_ns: int, code: tuple[str, ...] = ()) -> Predictor:
    from cifar_core import embeddings

    model = _keras_pool().get(path, tuple(Path(c) for c in code)).model
    return Predictor(embeddings.feature_model(model)).warm()


def features_for(run: Run, pixels: np.ndarray) -> np.ndarray:
    """Penultimate-layer features of uint8 32x32 images by the run's model (the engine's)."""
    from cifar_core import embeddings

    path = run.model_path
    code = tuple(str(c) for c in code_for(run))
    return embeddings.features(_extractor(str(path), path.stat().st_mtime_ns, code), pixels)


def selected_points(event) -> list[int]:
    """The ``customdata[0]`` (here: test image indices) of the points a user selected in an
    ``st.plotly_chart(..., on_select="rerun")`` (box, lasso or click), sorted, no repeats."""
    selection = getattr(event, "selection", None)
    if selection is None and isinstance(event, dict):
        selection = event.get("selection")
    points = (selection or {}).get("points", []) if hasattr(selection or {}, "get") else []
    out = set()
    for point in points:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if data is not None:
            out.add(int(data))
    return sorted(out)


def study_names() -> list[str]:
    """The hyper-parameter studies stored in the artifacts folder."""
    from cifar_core.artifacts import studies

    return studies.list_studies(artifacts_dir())


@st.cache_resource(show_spinner="Reading the study…", max_entries=16)
def _study(root: str, name: str, signature: tuple) -> dict:
    from cifar_core.tuning import read_study

    return read_study(Path(root), name)


def study_for(name: str) -> dict:
    """A study read by the engine (trials, importances, best), cached until its files change;
    ArtifactError for a bad one."""
    from cifar_core.artifacts import studies

    root = artifacts_dir()
    folder = studies.study_dir(root, name)
    signature = tuple(_mtime(folder / f) for f in (studies.STUDY_INFO, studies.JOURNAL))
    return _study(str(root), name, signature)
