"""Compare two models on the same test images: McNemar test, who gets what right, calibration."""

import common
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cifar_core.evaluate import mcnemar_test, reliability_curve

MAX_SHOWN = 16

st.title("Compare two models")
runs = common.require_runs(minimum=2)
if runs:
    runs = common.same_test_set(runs)
    labels = {common.run_label(r): r for r in runs}
    if len(labels) < 2:
        st.info("Needs two runs scored on the same test images.")
    else:
        c1, c2 = st.columns(2)
        a = labels[c1.selectbox("Model A", list(labels), index=0, key="cmp_a")]
        b = labels[c2.selectbox("Model B", list(labels), index=1, key="cmp_b")]
        y = a.predictions["y_true"]
        right_a = a.predictions["probs"].argmax(1) == y
        right_b = b.predictions["probs"].argmax(1) == y
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

        for title, mask, run in (
            ("Only A gets right", right_a & ~right_b, a),
            ("Only B gets right", ~right_a & right_b, b),
        ):
            idx = np.flatnonzero(mask)[:MAX_SHOWN]
            st.subheader(f"{title} ({int(mask.sum())})")
            names = run.class_names
            captions = [
                f"#{i} {names[y[i]]}: A {names[a.predictions['probs'][i].argmax()]}, "
                f"B {names[b.predictions['probs'][i].argmax()]}"
                for i in idx
            ]
            common.image_grid(common.test_images(run, idx), captions)

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
                    name=f"{name}: {run.manifest['model']} (ECE {run.metrics['test']['ece']:.3f})",
                )
            )
        fig.update_layout(title="Reliability diagram", xaxis_title="confidence", yaxis_title="accuracy")
        st.plotly_chart(fig, width="stretch", key="cmp_reliability")
