"""Compare two models on the same test images: McNemar test, who gets what right, calibration."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import loading, widgets

from cifar_core.analysis import crossrun, seeds
from cifar_core.evaluate import mcnemar_test, reliability_curve


@st.cache_resource(show_spinner="Bootstrapping over test images and seeds…", max_entries=64)
def group_comparison(a_ids: tuple, b_ids: tuple, _a, _b) -> dict:
    return seeds.compare(_a, _b)


def group_difference(runs, a, b) -> None:
    """A's and B's seed groups: the difference of their mean accuracy with a 95% interval
    (bootstrap over test images and seeds), McNemar per seed pair, and what it means."""
    groups = seeds.group_runs(runs)
    group_a = next(g for g in groups if a in g.members)
    group_b = next(g for g in groups if b in g.members)
    if group_a is group_b:
        st.caption(f"A and B are seeds of one group ({group_a.label}, n = {group_a.n}).")
        return
    st.subheader("Is the difference real? (seed groups)")
    result = group_comparison(
        tuple(r.run_id for r in group_a.members), tuple(r.run_id for r in group_b.members), group_a, group_b
    )
    real = result["low"] > 0 or result["high"] < 0
    (st.success if real else st.info)(result["sentence"])
    st.caption(
        f"A's group: {group_a.label}, n = {group_a.n} (seeds {', '.join(map(str, group_a.seeds))}); "
        f"B's group: {group_b.label}, n = {group_b.n} (seeds {', '.join(map(str, group_b.seeds))}). "
        f"The 95% interval of B minus A is a {result['method']} ({result['n_boot']:,} draws): each draw "
        "resamples the test images (the same for both groups, which were scored on the same images) "
        "and each group's seeds, so it covers another test set and another seed. With one seed a "
        "group's seed-to-seed spread is unknown, and the interval covers the test images only."
    )
    pairs = pd.DataFrame(result["mcnemar"]).rename(
        columns={"a": "A run", "b": "B run", "only_a_right": "only A right", "only_b_right": "only B right"}
    )
    st.dataframe(
        pairs[["A run", "B run", "only A right", "only B right", "p_value"]],
        hide_index=True,
        key="cmp_pairs",
        column_config={"p_value": st.column_config.NumberColumn("McNemar p-value", format="%.3g")},
    )


def differing(mask: np.ndarray, right, wrong, a, b, y: np.ndarray) -> None:
    """The images one model gets right and the other not, the wrong one's surest first."""
    idx = np.flatnonzero(mask)
    confidence = wrong.predictions["probs"][idx].max(1)
    idx = idx[np.argsort(-confidence, kind="stable")]
    shown = st.select_slider(
        "Images shown", [16, 48, 96, 200], value=16, key="cmp_shown", help="Surest wrong answers first"
    )
    st.caption(
        f"{len(idx)} test images {right.label} gets right and {wrong.label} "
        f"gets wrong; the first {min(shown, len(idx))}, most confident mistakes first."
    )
    names = a.class_names
    pred_a, pred_b = a.predictions["y_pred"], b.predictions["y_pred"]
    captions = [f"#{i} {names[y[i]]}: A {names[pred_a[i]]}, B {names[pred_b[i]]}" for i in idx[:shown]]
    # the wrong model stored these as its mistakes when the data is not on this machine
    widgets.image_grid(widgets.test_images(wrong, idx[:shown]), captions)


def reliability(a, b, y: np.ndarray) -> None:
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfect calibration",
            line={"dash": "dot", "color": "grey"},
        )
    )
    for name, run in (("A", a), ("B", b)):
        curve = reliability_curve(y, run.predictions["probs"])
        fig.add_trace(
            go.Scatter(
                x=curve["confidence"],
                y=curve["accuracy"],
                mode="lines+markers",
                name=f"{name}: {run.label} (ECE {run.metrics['test']['ece']:.3f})",
            )
        )
    fig.update_layout(title="Reliability diagram", xaxis_title="confidence", yaxis_title="accuracy")
    st.plotly_chart(fig, width="stretch", key="cmp_reliability")


st.title("Compare two models")
runs = loading.require_runs(minimum=2)
if runs:
    runs = crossrun.same_test_set(runs)
    labels = loading.by_label(loading.one_per_recipe(runs))
    if len(labels) < 2:
        st.info("Needs two runs scored on the same test images.")
    else:
        c1, c2 = st.columns(2)
        a = labels[c1.selectbox("Model A", list(labels), index=0, key="cmp_a")]
        b = labels[c2.selectbox("Model B", list(labels), index=1, key="cmp_b")]
        y = a.predictions["y_true"]
        right_a = a.predictions["y_pred"] == y
        right_b = b.predictions["y_pred"] == y
        test = mcnemar_test(right_a, right_b)
        m1, m2, m3 = st.columns(3)
        m1.metric("A accuracy", f"{right_a.mean():.2%}")
        m2.metric(
            "B accuracy", f"{right_b.mean():.2%}", delta=f"{(right_b.mean() - right_a.mean()) * 100:+.2f} pts"
        )
        m3.metric("McNemar p-value", f"{test['p_value']:.3g}")
        verdict = "significant at 5%" if test["p_value"] < 0.05 else "not significant at 5%"
        st.caption(f"Exact McNemar test on the {len(y)} shared test images: the difference is {verdict}.")
        st.table(
            pd.DataFrame(
                {
                    "B right": [test["both_right"], test["only_b_right"]],
                    "B wrong": [test["only_a_right"], test["both_wrong"]],
                },
                index=["A right", "A wrong"],
            )
        )

        group_difference(runs, a, b)

        # Images and the calibration chart sit in tabs rendered only when opened
        # (on_change="rerun" gives tabs `.open`): 32 images and plotly's first load made a
        # first visit take ~1.8 s here; one tab of 16 images is what a visitor reads first.
        tabs = st.tabs(
            ["Only A gets right", "Only B gets right", "Reliability diagram"],
            key="cmp_view",
            on_change="rerun",
        )
        for tab, (mask, right, wrong) in zip(tabs, ((right_a & ~right_b, a, b), (~right_a & right_b, b, a))):
            if tab.open:
                with tab:
                    differing(mask, right, wrong, a, b, y)
        if tabs[2].open:
            with tabs[2]:
                reliability(a, b, y)
