"""Robustness: every measured model under the CIFAR-10-C corruptions, regenerated.

The engine (``cifar_core.analysis.robustness``) measures (``python -m cifar_core robustness``),
stores and tabulates; this page draws: a models x corruptions heatmap, accuracy against
severity, robustness against clean accuracy, one image at every severity with every model's
answer, and the images a model gets wrong in one cell.
"""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from common import loading

from cifar_core.analysis import robustness
from cifar_core.artifacts.testdata import test_images
from cifar_core.data import corruptions

st.title("Robustness")
st.caption(
    f"{robustness.LABEL} (Hendrycks & Dietterich, ICLR 2019): 15 corruptions at 5 severities on "
    "the same test images for every model, one view per image (no TTA)."
)
runs, _ = loading.load_runs()
frame, images = robustness.table(runs)
if frame.empty:
    st.info(
        "No run is measured yet: `python -m cifar_core robustness --all --data-dir "
        "../shared/data/cifar10-jpeg` scores every run with a model file (minutes per model)."
    )
    st.stop()
by_id = {run.run_id: run for run in runs}
st.caption(f"{len(frame)} runs measured on {images:,} test images.")

shown = frame[["label", "clean", "mean corruption accuracy", "drop", "relative mCE"]]
st.dataframe(
    shown.style.format(
        {"clean": "{:.1%}", "mean corruption accuracy": "{:.1%}", "drop": "{:.1%}", "relative mCE": "{:.2f}"}
    ),
    hide_index=True,
    width="stretch",
    key="robustness_table",
)

st.subheader("Which model breaks under what")
names = [n for n in corruptions.NAMES if n in frame]
heat = go.Figure(
    go.Heatmap(
        z=frame[names].to_numpy(),
        x=[n.replace("_", " ") for n in names],
        y=frame["label"],
        colorscale="RdYlGn",
        zmin=0,
        zmax=1,
        text=np.vectorize(lambda v: f"{v:.0%}")(frame[names].to_numpy()),
        texttemplate="%{text}",
        hovertemplate="%{y}<br>%{x}: %{z:.1%} (mean of 5 severities)<extra></extra>",
    )
)
heat.update_layout(height=120 + 28 * len(frame), margin={"t": 10, "b": 10}, yaxis={"autorange": "reversed"})
event = st.plotly_chart(
    heat, key="robustness_heat", on_select="rerun", selection_mode="points", width="stretch"
)
picked = (event.selection.points if event and event.selection else None) or []
if picked:  # a click on a cell picks the model and the corruption below
    point = picked[0]
    if point.get("y") in set(frame["label"]) and str(point.get("x", "")).replace(" ", "_") in names:
        st.session_state["robustness_run"] = point["y"]
        st.session_state["robustness_corruption"] = str(point["x"]).replace(" ", "_")

left, right = st.columns(2)
with left:
    st.subheader("Accuracy against severity")
    curves = robustness.by_severity([by_id[r] for r in frame["run_id"]], images)
    fig = go.Figure()
    for label, rows in curves.groupby("label", sort=False):
        stats = rows.groupby("severity")["accuracy"].agg(["mean", "min", "max"])
        if len(rows["run_id"].unique()) > 1:  # a seed group: its band
            fig.add_trace(
                go.Scatter(
                    x=[*stats.index, *stats.index[::-1]],
                    y=[*stats["max"], *stats["min"][::-1]],
                    fill="toself",
                    opacity=0.2,
                    line={"width": 0},
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
        fig.add_trace(go.Scatter(x=stats.index, y=stats["mean"], mode="lines+markers", name=label))
    fig.update_layout(
        xaxis_title="severity (0: clean)", yaxis_title="accuracy", height=380, yaxis_tickformat=".0%"
    )
    st.plotly_chart(fig, key="robustness_severity", width="stretch")
with right:
    st.subheader("Robustness against clean accuracy")
    scatter = go.Figure(
        go.Scatter(
            x=frame["clean"],
            y=frame["mean corruption accuracy"],
            mode="markers+text",
            text=frame["label"],
            textposition="top center",
            showlegend=False,
        )
    )
    line = robustness.clean_line(frame)
    if line is not None:
        xs = np.linspace(frame["clean"].min(), frame["clean"].max(), 2)
        scatter.add_trace(
            go.Scatter(x=xs, y=line[0] * xs + line[1], mode="lines", line={"dash": "dash"}, name="fit")
        )
    scatter.update_layout(
        xaxis_title="clean accuracy",
        yaxis_title="mean corruption accuracy",
        height=380,
        xaxis_tickformat=".0%",
        yaxis_tickformat=".0%",
    )
    st.plotly_chart(scatter, key="robustness_scatter", width="stretch")
    st.caption("Dashed: the line a model would follow if robustness came only from clean accuracy.")

st.subheader("One cell: the images a model gets wrong")
labels = frame["label"].tolist()
c1, c2, c3 = st.columns(3)
label = c1.selectbox("Model", labels, key="robustness_run")
corruption = c2.selectbox("Corruption", names, key="robustness_corruption")
severity = c3.select_slider(
    "Severity", options=list(corruptions.SEVERITIES), value=3, key="robustness_severity_pick"
)
run = by_id[frame.loc[frame["label"] == label, "run_id"].iloc[0]]
cell = robustness.cell_images(run, images, corruption, severity)
if cell is None:
    st.caption("The run's test images are not on this machine: its data folder is needed to show them.")
elif not cell:
    st.success(f"{label} gets every image right under {corruption} at severity {severity}.")
else:
    cols = st.columns(8)
    for k, (index, image, truth, guess) in enumerate(cell):
        cols[k % 8].image(
            image, caption=f"#{index}: {run.class_names[truth]} → {run.class_names[guess]}", width=96
        )

st.subheader("One image at every severity, every model's answer")
example = robustness.cell_images(run, images, corruption, 1, wrong_only=False, most=1)
if example:
    index = example[0][0]
    strip = st.columns(6)
    strip[0].image(test_images(run, [index])[0], caption="clean", width=96)
    for s in corruptions.SEVERITIES:
        bent = robustness.cell_images(run, images, corruption, s, wrong_only=False, most=1)[0][1]
        strip[s].image(bent, caption=f"severity {s}", width=96)
    st.dataframe(
        robustness.answers([by_id[r] for r in frame["run_id"]], images, corruption),
        hide_index=True,
        width="stretch",
        key="robustness_answers",
    )
