"""Agreement: how many models get each test image right, and what a majority vote does."""

import numpy as np
import pandas as pd
import streamlit as st
from common import figures, loading, widgets

from cifar_core.analysis import crossrun

st.title("Agreement across models")
runs = loading.require_runs()
if runs:
    runs = crossrun.same_test_set(runs)
    correct = crossrun.correct_matrix(runs)  # (models, images)
    y = runs[0].predictions["y_true"]
    majority = crossrun.majority_vote(runs)
    mean_probs = crossrun.ensemble_probs(runs)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Models compared", len(runs))
    c2.metric("Majority vote accuracy", f"{(majority == y).mean():.2%}")
    c3.metric("Averaged probabilities", f"{(mean_probs.argmax(1) == y).mean():.2%}")
    c4.metric("Best single model", f"{correct.mean(axis=1).max():.2%}")
    counts = correct.sum(axis=0)
    hist = pd.Series(counts).value_counts().reindex(range(len(runs) + 1), fill_value=0)
    fig = figures.grouped_bars(
        pd.DataFrame({"models right": hist.index, "test images": hist.values}),
        "models right",
        "test images",
        None,
        "How many models get each test image right",
    )
    st.plotly_chart(fig, width="stretch", key="ag_hist")
    nobody = np.flatnonzero(counts == 0)
    st.subheader(f"{len(nobody)} images no model gets right")
    names = runs[0].class_names
    shown = nobody[:32]
    widgets.image_grid(
        widgets.test_images(runs[0], shown), [f"#{i} {names[y[i]]} → {names[majority[i]]}" for i in shown]
    )
