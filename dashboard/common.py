"""What every page shares: cached run loading, cached models, test images, empty states.

Runs are read only through ``cifar_core.artifacts`` and models loaded only through
``cifar_core.inference``; this module adds Streamlit caching on top:
- ``st.cache_resource`` for runs (shared, read-only), keyed by the stat() of each run's
  files, so a new or changed run shows up on the next rerun without a restart;
- ``st.cache_resource`` for Keras models, shared by all sessions, each with a lock because
  one Keras model must not predict from two threads at once.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cifar_core import artifacts  # noqa: E402
from cifar_core.artifacts import Run  # noqa: E402

IMAGE_FOLDER_PREFIX = "image folder "


def artifacts_dir() -> Path:
    return artifacts.artifacts_root()


def _signature(root: Path) -> tuple:
    rows = []
    for run_id in artifacts.list_runs(root):
        folder = root / "runs" / run_id
        stats = []
        for name in artifacts.REQUIRED_FILES:
            try:
                stat = (folder / name).stat()
                stats.append((stat.st_mtime_ns, stat.st_size))
            except OSError:
                stats.append(None)
        rows.append((run_id, tuple(stats)))
    return tuple(rows)


@st.cache_resource(show_spinner="Reading runs…", max_entries=8)
def _load(root: str, signature: tuple) -> tuple[list[Run], dict[str, str]]:
    # cache_resource, not cache_data: cache_data would unpickle every run's arrays (test
    # predictions, thumbnails: megabytes each) on every rerun of every session. The runs
    # are shared read-only: pages never modify them.
    return artifacts.load_runs(Path(root))


def load_runs() -> tuple[list[Run], dict[str, str]]:
    """Every readable run (sorted by test accuracy) and the reasons the others are not."""
    root = artifacts_dir()
    runs, bad = _load(str(root), _signature(root))
    return sorted(runs, key=lambda r: -r.metrics["test"]["accuracy"]), bad


def run_label(run: Run) -> str:
    return f"{run.manifest['model']} · {run.metrics['test']['accuracy']:.1%} · {run.run_id}"


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
        key = (run.manifest["data"].get("checksum"), len(run.predictions["y_true"]))
        groups.setdefault(key, []).append(run)
    return max(groups.values(), key=len) if groups else []


def correct_matrix(runs: list[Run]) -> np.ndarray:
    """(models, images) booleans: which run gets which test image right."""
    return np.stack([r.predictions["y_pred"] == r.predictions["y_true"] for r in runs])


@st.cache_resource(show_spinner="Loading model…", max_entries=32)
def _model(path: str, mtime_ns: int):
    from cifar_core.inference import load_model

    model = load_model(path)
    # The first predict traces the graph (~1 s for Lite0 here): do it now, so that the
    # ms/image the Classify page shows is inference, not tracing.
    model.predict_on_batch(np.zeros((1, 32, 32, 3), np.uint8))
    return model, threading.Lock()


def model_for(run: Run):
    """(Keras model, lock) of a run, loaded once per process with safe mode on."""
    path = run.model_path
    return _model(str(path), path.stat().st_mtime_ns)


def _data_folder(run: Run) -> Path | None:
    source = run.manifest["data"].get("source", "")
    if source.startswith(IMAGE_FOLDER_PREFIX):
        folder = Path(source[len(IMAGE_FOLDER_PREFIX) :])
        return folder if folder.is_dir() else None
    return None


def available_test_indices(run: Run) -> np.ndarray:
    """Test images that can be shown here: all if the data is on this machine, else thumbnails."""
    if _data_folder(run) is not None:
        return np.arange(len(run.predictions["y_true"]))
    return np.asarray(run.thumbnails.get("index", []), dtype=int)


def test_images(run: Run, indices: np.ndarray) -> list[np.ndarray | None]:
    """32x32 test images by index: from the run's data source if it is on this machine,
    else from the thumbnails the run stored; None where neither has it."""
    from PIL import Image

    folder = _data_folder(run)
    thumbs = run.thumbnails
    lookup = {int(i): k for k, i in enumerate(thumbs.get("index", []))}
    images = []
    for index in indices:
        image = None
        if folder is not None:
            path = (folder / str(run.predictions["test_ids"][index])).resolve()
            if path.is_file() and folder.resolve() in path.parents:
                try:
                    with Image.open(path) as im:
                        image = np.asarray(im.convert("RGB"))
                except OSError:
                    image = None
        if image is None and int(index) in lookup:
            image = thumbs["images"][lookup[int(index)]]
        images.append(image)
    return images


def image_grid(images: list, captions: list[str], columns: int = 8) -> None:
    """Show images in a grid; missing images become a short note."""
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, image, caption in zip(
            cols, images[start : start + columns], captions[start : start + columns]
        ):
            with col:
                if image is None:
                    st.caption(f"(image not available) {caption}")
                else:
                    st.image(image, caption=caption, width="stretch")


def leaderboard_frame(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        m, test = run.metrics, run.metrics["test"]
        rows.append(
            {
                "run": run.run_id,
                "model": run.manifest["model"],
                "family": run.manifest.get("family", ""),
                "params": m.get("params"),
                "test_acc": test["accuracy"],
                "macro_f1": test["macro_f1"],
                "precision": test["macro_precision"],
                "recall": test["macro_recall"],
                "top3_acc": test["top3_accuracy"],
                "log_loss": test["log_loss"],
                "ece": test["ece"],
                "train_acc": m.get("train", {}).get("accuracy"),
                "val_acc": m.get("val", {}).get("accuracy"),
                "gap": m.get("overfitting_gap"),
                "train_min": (m.get("train_time_s") or 0) / 60,
                "epochs": m.get("epochs_run"),
                "ms_per_image": m.get("inference", {}).get("latency_ms_batch1"),
                "hardware": run.manifest.get("hardware", ""),
                "data": run.manifest["data"].get("source", ""),
            }
        )
    return pd.DataFrame(rows)
