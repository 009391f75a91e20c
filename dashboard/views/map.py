"""Map of the test set: each run's features in 2-D (t-SNE), selections and neighbours."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import figures, loading, serving, widgets

from cifar_core.analysis import embeddings
from cifar_core.data.images import decode_image
from cifar_core.errors import CifarError, ImageError

MAX_SELECTED = 48  # images shown for a selection
NEIGHBOURS = 12
SIGNS = {"right": "circle", "wrong": "x"}


def scatter(run, arrays, classes: list[str]):
    names = run.class_names
    y, p = run.predictions["y_true"], run.predictions["y_pred"]
    frame = pd.DataFrame(
        {
            "x": arrays["xy"][:, 0].astype(np.float32),
            "y": arrays["xy"][:, 1].astype(np.float32),
            "index": np.arange(len(y)),
            "true class": [names[c] for c in y],
            "predicted": [names[c] for c in p],
            "confidence": run.predictions["probs"].max(1),
            "outcome": np.where(p == y, "right", "wrong"),
        }
    )
    frame = frame[frame["true class"].isin(classes)]
    fig = go.Figure()
    for i, name in enumerate(names):  # one trace per class and outcome: the legend toggles them
        for outcome, sign in SIGNS.items():
            part = frame[(frame["true class"] == name) & (frame["outcome"] == outcome)]
            if part.empty:
                continue
            fig.add_trace(
                go.Scattergl(
                    x=part["x"],
                    y=part["y"],
                    mode="markers",
                    name=f"{name}, {outcome}",
                    legendgroup=name,
                    marker={"size": 5, "opacity": 0.75, "symbol": sign, "color": figures.colour(i)},
                    customdata=part["index"],  # what a selection returns (widgets.selected_points)
                    text=[f"{p} {c:.0%}" for p, c in zip(part["predicted"], part["confidence"])],
                    hovertemplate=f"true {name}, predicted %{{text}}<br>#%{{customdata}}<extra></extra>",
                )
            )
    fig.update_layout(
        height=640,
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        dragmode="select",
        legend_title_text="true class, outcome",
    )
    return fig, frame


def grid(run, indices, note: str = "") -> None:
    names = run.class_names
    y, p, probs = run.predictions["y_true"], run.predictions["y_pred"], run.predictions["probs"]
    indices = np.asarray(indices, dtype=int)
    captions = [
        f"#{i}{note} · {names[y[i]]}" + ("" if y[i] == p[i] else f" → {names[p[i]]} {probs[i, p[i]]:.0%}")
        for i in indices
    ]
    widgets.image_grid(widgets.test_images(run, indices), captions)


def neighbours_view(run, arrays) -> None:
    st.subheader("Neighbours: where the model puts an image")
    names = run.class_names
    c1, c2 = st.columns([1, 2])
    n = len(run.predictions["y_true"])
    index = c1.number_input("Test image #", 0, n - 1, value=0, step=1, key="map_query")
    upload = c2.file_uploader(
        "…or a photo of your own", type=["jpg", "jpeg", "png", "webp", "bmp", "gif"], key="map_upload"
    )
    exclude = None
    if upload is not None:
        try:
            pixels = decode_image(upload.getvalue(), name=upload.name)  # in memory, never written
        except ImageError as error:
            st.error(str(error))
            return
        try:
            query = embeddings.project(arrays, serving.features_for(run, pixels[None]))[0]
        except CifarError as error:
            st.error(f"{run.run_id}: {error}")
            return
        title = upload.name
    else:
        index = int(index)
        (pixels,) = widgets.test_images(run, [index])
        query, exclude = arrays["pca"][index], index
        truth = names[int(run.predictions["y_true"][index])]
        said = names[int(run.predictions["y_pred"][index])]
        title = f"test image #{index}: {truth}, model says {said}"
    order, similarity = embeddings.neighbours(arrays, query, k=NEIGHBOURS, exclude=exclude)
    vote = embeddings.neighbour_vote(run.predictions["y_true"], order, names)
    left, right = st.columns([1, 5])
    with left:
        if pixels is not None:
            st.image(pixels, caption=title, width="stretch")
        else:
            st.caption(f"{title} (image not available here)")
    with right:
        st.write(
            f"Its {len(order)} nearest test images in {run.label}'s feature space are labelled "
            + ", ".join(f"**{name}** ({count})" for name, count in vote)
        )
        grid(run, order)
        st.caption(
            f"Cosine similarity of the nearest {similarity[0]:.2f}, "
            f"of the farthest shown {similarity[-1]:.2f}."
        )


st.title("Map of the test set")
runs = loading.require_runs()
if runs:
    mapped, missing, broken = [], [], {}
    for run in runs:
        try:
            (mapped if loading.embedding_for(run) is not None else missing).append(run)
        except CifarError as error:
            broken[run.run_id] = str(error)
    for run_id, reason in broken.items():
        st.warning(f"{run_id}: {reason}")
    if missing:
        with st.expander(f"{len(missing)} run(s) without a map", icon=":material/info:"):
            st.write(", ".join(r.run_id for r in missing))
            st.code("python -m cifar_core embed --all --data-dir /path/to/cifar10", language="bash")
    if not mapped:
        st.info("No run has a map of its test set yet: make them with the command above.")
    else:
        run = loading.pick_run(mapped, "Run", key="map_run")
        arrays = loading.embedding_for(run)
        names = run.class_names
        pair = [c for c in ("cat", "dog") if c in names]
        focus = st.radio(
            "Classes", ["all", "cat and dog"] if len(pair) == 2 else ["all"], horizontal=True, key="map_focus"
        )
        fig, frame = scatter(run, arrays, pair if focus == "cat and dog" else names)
        wrong = int((frame["outcome"] == "wrong").sum())
        st.caption(
            f"{len(frame)} test images ({wrong} wrong, marked x), {run.label}'s penultimate-layer "
            f"features: PCA to {arrays['pca'].shape[1]} dimensions ({float(arrays['explained']):.0%} of "
            f"the variance), then t-SNE (perplexity {float(arrays['perplexity']):.0f}, seed "
            f"{int(arrays['seed'])}). Drag a box (or pick the lasso in the chart's toolbar) to "
            "see the images; hover for labels."
        )
        event = st.plotly_chart(
            fig, width="stretch", on_select="rerun", selection_mode=("points", "box", "lasso"), key="map_plot"
        )
        chosen = widgets.selected_points(event)
        if chosen:
            y, p = run.predictions["y_true"][chosen], run.predictions["y_pred"][chosen]
            counts = pd.Series([names[c] for c in y]).value_counts()
            st.subheader(f"{len(chosen)} selected: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            st.caption(f"{int((y != p).sum())} of them wrong. Showing {min(len(chosen), MAX_SELECTED)}.")
            grid(run, chosen[:MAX_SELECTED])
        neighbours_view(run, arrays)
