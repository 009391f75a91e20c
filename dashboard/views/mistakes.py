"""Mistakes: the test images a model gets wrong, cat vs dog first."""

import numpy as np
import pandas as pd
import streamlit as st
from common import figures, loading, widgets

from cifar_core.analysis import crossrun, runcard

st.title("Mistakes")
runs = loading.require_runs()
if runs:
    runs = crossrun.same_test_set(runs)
    names = runs[0].class_names
    labels = loading.by_label(runs)
    c1, c2 = st.columns(2)
    true_class = c1.selectbox(
        "True class", names, index=names.index("cat") if "cat" in names else 0, key="mk_true"
    )
    pred_class = c2.selectbox(
        "Predicted as", names, index=names.index("dog") if "dog" in names else 1, key="mk_pred"
    )
    chosen = st.multiselect("Runs", list(labels), default=list(labels)[:3], key="mk_runs")
    c3, c4 = st.columns(2)
    order = c3.radio(
        "Order", ["most confident first", "least confident first"], horizontal=True, key="mk_order"
    )
    # 16 per run up front: every image is one request and one element for the browser.
    max_shown = c4.select_slider("Images per run", [16, 32, 64, 128, 256], value=16, key="mk_shown")
    t, p = names.index(true_class), names.index(pred_class)

    counts = pd.DataFrame(
        [
            {
                "run": r.label,
                "confusion": f"{a} → {b}",
                "images": int(r.confusion[names.index(a), names.index(b)]),
            }
            for r in runs
            for a, b in (("cat", "dog"), ("dog", "cat"))
            if {"cat", "dog"} <= set(names)
        ]
    )
    if len(counts):
        fig = figures.grouped_bars(
            counts, "run", "images", "confusion", "Cat ↔ dog confusions per model (test split)"
        )
        st.plotly_chart(fig, width="stretch", key="mk_catdog")

    if not chosen:
        st.info("Choose at least one run.")
    wrong_sets, shown_any = [], []
    for label in chosen:
        run = labels[label]
        probs = run.predictions["probs"]
        hits = runcard.pair_images(run, t, p, most_confident=order.startswith("most"))
        wrong_sets.append(set(hits.tolist()))
        st.subheader(f"{run.label}: {len(hits)} {true_class} images predicted as {pred_class}")
        shown = hits[:max_shown]
        shown_any.extend(i for i in shown.tolist() if i not in shown_any)
        captions = [f"#{i} · {pred_class} {probs[i, p]:.0%} · {true_class} {probs[i, t]:.0%}" for i in shown]
        widgets.image_grid(widgets.test_images(run, shown), captions)
        if len(hits) > max_shown:
            st.caption(f"… and {len(hits) - max_shown} more")

    if len(wrong_sets) > 1:
        every = set.intersection(*wrong_sets)
        some = set.union(*wrong_sets) - every
        st.subheader(f"Across the {len(wrong_sets)} runs")
        st.write(
            f"**{len(every)}** images are {true_class} → {pred_class} for every selected run; "
            f"**{len(some)}** only for some."
        )
        shown = sorted(every)[:max_shown]
        widgets.image_grid(
            widgets.test_images(labels[chosen[0]], np.array(shown, dtype=int)),
            [f"#{i}: all wrong" for i in shown],
        )

    if shown_any:
        st.subheader("Why?")
        pick = st.selectbox(
            "Pick an image from the grids above: each run's heatmaps for the true and the predicted class",
            ["(none)", *(f"#{i}" for i in shown_any)],
            key="mk_why",
        )
        if pick != "(none)":
            pick = int(pick[1:])
            (pixels,) = widgets.test_images(labels[chosen[0]], np.array([pick]))
            if pixels is None:
                st.info("This test image is not available here (data source missing, no thumbnail).")
            else:
                wanted = []
                for label in chosen:
                    run = labels[label]
                    said = run.class_names[int(run.predictions["y_pred"][pick])]
                    for name, role in ((true_class, "true"), (said, "said")):
                        wanted.append((run, name, f"{run.label} · {role}: '{name}'"))
                widgets.heatmap_grid(pixels, wanted, columns=6)
