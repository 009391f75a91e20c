"""Classify: upload photos and see every model's prediction side by side."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from common import loading, serving, widgets

from cifar_core.data.images import open_image, preview, to_pixels
from cifar_core.errors import ImageError, ModelLoadError
from cifar_core.serving.inference import classify

OWN_CLASS = "each model's own top class"

MAX_FILES = 8  # per request; more are ignored with a message
WAIT_S = 2.0  # an answer waits this long for models still loading (an export: ~20 ms each)
TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif"]


def predict_all(runs, images: list[np.ndarray]) -> tuple[list[pd.DataFrame], list[str]]:
    """One table per image: every loaded model's prediction, all images through a model as
    one batch (the engine's ``classify`` on the shared, warm ``Predictor``); and the models
    still loading (they answer when the page reruns after loading)."""
    rows, loading = [[] for _ in images], []
    deadline = time.perf_counter() + WAIT_S
    for run in runs:
        try:
            predict = serving.predictor_for(run, wait=max(0.0, deadline - time.perf_counter()))
        except ModelLoadError as error:
            st.warning(f"{run.run_id}: {error}")
            continue
        if predict is None:
            loading.append(run.label)
            continue
        for row, result in zip(rows, classify(predict, images, run.class_names)):
            top, confidence = result["top"][0]
            row.append(
                {
                    "model": run.label,
                    "prediction": top,
                    "confidence": confidence,
                    "ms": result["ms_per_image"],
                    **result["probs"],
                }
            )
    return [pd.DataFrame(row) for row in rows], loading


@st.fragment(run_every=1.0)
def loading_progress(paths) -> None:
    """A progress bar while the models load in the background. The page reruns when they
    are all loaded, and, while a photo is shown, whenever another model is: each answers
    as soon as it can."""
    ready, total = serving.models_ready(paths)
    more = ready > st.session_state.get("cls_ready", 0)
    st.session_state["cls_ready"] = ready
    if ready >= total or (more and st.session_state.get("cls_showing")):
        st.rerun()
    doing = (
        "Exporting the models for this machine (once, a minute or two), then loading them"
        if serving.exporting()
        else "Loading models in the background"
    )
    st.progress(ready / max(total, 1), text=f"{doing}: {ready}/{total} ready…")


def decoded(upload) -> tuple:
    """(preview, 32x32 pixels) of an upload, decoded once per file in this session (a rerun,
    a second upload, does not decode the first photo again); ImageError for a bad file."""
    cache = st.session_state.setdefault("cls_decoded", {})
    if upload.file_id not in cache:
        image = open_image(upload.getvalue(), name=upload.name)  # in memory: never written to disk
        cache[upload.file_id] = (preview(image), to_pixels(image))
    return cache[upload.file_id]


def explain(pixels: np.ndarray, runs, table: pd.DataFrame, class_name: str) -> None:
    """Each model's heatmap over the 32x32 view, for its top class or for ``class_name``."""
    predicted = dict(zip(table["model"], table["prediction"]))
    wanted = []
    for run in runs:
        if run.label not in predicted:
            continue  # it could not be loaded (warned above)
        name = predicted[run.label] if class_name == OWN_CLASS else class_name
        wanted.append((run, name, f"{run.label}: where it sees '{name}'"))
    widgets.heatmap_grid(pixels, wanted, columns=5)


def show(
    title: str,
    image,
    pixels: np.ndarray,
    table: pd.DataFrame,
    runs,
    truth: str | None = None,
    why: str | None = None,
    loading: list[str] = (),
) -> None:
    import plotly.graph_objects as go  # on an answer only: the first visit needs none

    left, right = st.columns([1, 3])
    left.image(image, caption=title, width="stretch")
    left.image(pixels, caption="what the models see (32x32)", width="stretch")
    if table.empty and loading:
        right.info("The models are loading…")
        return
    if table.empty:
        right.error("No model could be loaded.")
        return
    votes = table["prediction"].value_counts()
    verdict = f"{votes.iloc[0]}/{len(table)} models say **{votes.index[0]}**"
    if truth is not None:
        verdict += f" (true label: **{truth}**)"
    (right.success if votes.iloc[0] == len(table) else right.warning)(verdict)
    right.caption(" · ".join(f"{r.model}: {r.prediction} {r.confidence:.0%}" for r in table.itertuples()))
    right.dataframe(
        table[["model", "prediction", "confidence", "ms"]],
        hide_index=True,
        width="stretch",
        column_config={
            "confidence": st.column_config.ProgressColumn(min_value=0, max_value=1),
            "ms": st.column_config.NumberColumn("ms/image", format="%.1f"),
        },
    )
    classes = [c for c in table.columns if c not in ("model", "prediction", "confidence", "ms")]
    probs = table[classes].to_numpy()
    # graph_objects, not plotly.express: this page is the hot path (50x faster to build).
    fig = go.Figure(
        go.Heatmap(
            z=probs,
            x=classes,
            y=table["model"],
            zmin=0,
            zmax=1,
            colorscale="Greens",
            text=np.round(probs, 2),
            texttemplate="%{text}",
        )
    )
    fig.update_layout(title="Class probabilities per model", yaxis={"autorange": "reversed"})
    right.plotly_chart(fig, width="stretch", key=f"cls_heat_{title}")
    if why is not None:
        st.markdown(f"**Why?** Red is what raised each model's score for the class ({why}).")
        explain(pixels, runs, table, why)


started = time.perf_counter()
st.title("Classify a photo")
controls = st.container()  # the models and the "Why?" switch, drawn above the box after it
# The box first: a visitor who came to classify waits for nothing (runs, models, exports).
files = st.file_uploader(
    "Photos (jpg, png, webp, bmp, gif: first frame)",
    type=TYPES,
    accept_multiple_files=True,
    key="cls_upload",
)
with controls:
    runs = loading.require_runs()
if runs:
    runs = loading.one_per_recipe(runs)
    sizes = {run.model_path: run.model_path.stat().st_size if run.model_path.is_file() else 0 for run in runs}
    paths = sorted(sizes, key=sizes.get)  # smallest first: the progress bar moves at once
    with controls:
        ready, total = serving.models_ready(paths)
        st.session_state["cls_ready"] = ready
        if ready < total:
            loading_progress(paths)
        keras_served = serving.served_by_keras()
        if keras_served:
            reasons = "; ".join(f"`{Path(path).parent.name}`: {why}" for path, why in keras_served.items())
            st.warning(f"{len(keras_served)} model(s) answer through Keras, slower to load: {reasons}")
        labels = loading.by_label(runs)
        chosen = [
            labels[lab]
            for lab in st.multiselect("Models", list(labels), default=list(labels), key="cls_models")
        ]
        why = None
        if st.toggle("Why? Show each model's heatmap", key="cls_why"):
            names = list(runs[0].class_names)
            why = st.selectbox("Heatmaps for", [OWN_CLASS, *names], key="cls_why_class")
    if st.button("Random test image", key="cls_random"):
        candidates = widgets.available_test_indices(runs[0])
        if len(candidates):
            st.session_state["cls_test_index"] = int(np.random.default_rng().choice(candidates))
        else:
            st.info("No test images are available here (data source missing, no thumbnails).")
    files = files or []
    if len(files) > MAX_FILES:
        st.warning(f"{len(files)} files uploaded: only the first {MAX_FILES} are classified.")
    shown = []  # (title, image as uploaded, 32x32 pixels, true label)
    for upload in files[:MAX_FILES]:
        try:
            image, pixels = decoded(upload)
        except ImageError as error:
            st.error(str(error))
            continue
        shown.append((upload.name, image, pixels, None))
    kept = {upload.file_id for upload in files}
    st.session_state["cls_decoded"] = {
        k: v for k, v in st.session_state.get("cls_decoded", {}).items() if k in kept
    }
    index = st.session_state.get("cls_test_index")
    if index is not None and chosen:
        run = runs[0]
        (pixels,) = widgets.test_images(run, np.array([index]))
        if pixels is None:
            st.info("This test image is not available here (data source missing, no thumbnail).")
        else:
            truth = run.class_names[int(run.predictions["y_true"][index])]
            shown.append((f"test image #{index}", pixels, np.asarray(pixels, dtype=np.uint8), truth))
    st.session_state["cls_showing"] = bool(shown)
    if shown:
        tables, loading = predict_all(chosen, [pixels for _, _, pixels, _ in shown])
        if loading:
            st.info(f"Still loading: {', '.join(loading)}. Their answers appear here when they are ready.")
        for (title, image, pixels, truth), table in zip(shown, tables):
            show(title, image, pixels, table, chosen, truth, why=why, loading=loading)
        model_ms = sum(float(table["ms"].sum()) for table in tables if not table.empty)
        st.caption(
            f"Server time for this answer: {time.perf_counter() - started:.2f} s for {len(shown)} "
            f"image(s); model time {model_ms:.0f} ms (the ms/image column summed over models and images)."
        )
    if not files and index is None:
        st.caption("Upload a photo, or press *Random test image*.")
