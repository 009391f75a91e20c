"""Per-class metrics and confusion matrices: one run, across runs, and the change between two."""

import numpy as np
import pandas as pd
import streamlit as st
from common import figures, loading, widgets

st.title("Per-class metrics and confusion")
runs = loading.require_runs()
if runs:
    labels = loading.by_label(runs)
    run = labels[st.selectbox("Run", list(labels), key="pc_run")]
    names = run.class_names
    normalise = st.radio("Show", ["counts", "row-normalised"], horizontal=True, key="pc_norm")
    matrix = run.confusion.astype(float)
    if normalise == "row-normalised":
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = figures.heatmap(
        matrix if normalise != "counts" else matrix.astype(int),
        names,
        names,
        f"Confusion matrix: {run.label}",
        "Blues",
        ".2f" if normalise != "counts" else None,
        {"x": "predicted", "y": "true", "color": normalise},
    )
    st.plotly_chart(fig, width="stretch", key="pc_confusion")

    st.subheader("Per class, across runs")
    metric = st.selectbox("Metric", ["f1", "precision", "recall"], key="pc_metric")
    chosen = st.multiselect("Runs", list(labels), default=list(labels)[:4], key="pc_runs")
    if chosen:
        rows = [labels[lab].per_class.assign(run=labels[lab].label) for lab in chosen]
        fig = figures.grouped_bars(pd.concat(rows), "class", metric, "run", f"{metric} per class")
        st.plotly_chart(fig, width="stretch", key="pc_bars")

    st.subheader("What changed between two runs")
    comparable = [lab for lab in labels if labels[lab].class_names == names]
    if len(comparable) < 2:
        st.info("Needs two runs with the same classes.")
    else:
        a = labels[st.selectbox("Run A", comparable, index=0, key="pc_a")]
        b = labels[st.selectbox("Run B", comparable, index=1, key="pc_b")]
        fig = widgets.confusion_change_figure(a, b, f"B minus A: {b.label} against {a.label}")
        st.plotly_chart(fig, width="stretch", key="pc_diff")
