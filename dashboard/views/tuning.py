"""Hyper-parameter studies: every trial of a search, which settings mattered, the best."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import loading

from cifar_core.errors import CifarError

PRUNED_GREY = "#c8c8c8"


def parallel_coordinates(trials: pd.DataFrame, space: dict) -> go.Figure:
    """One line per finished trial across its parameters and its validation accuracy:
    coloured by accuracy, pruned trials grey; log-scaled parameters on a log10 axis."""
    shown = trials[trials["state"].isin(["complete", "pruned"])]
    dims = []
    for key, spec in space.items():
        values = shown.get(f"param:{key}")
        if values is None:
            continue
        kind = next(iter(spec))
        if kind == "log":
            ticks = [v for v in np.logspace(-6, 0, 13) if spec["log"][0] <= v <= spec["log"][1]]
            dims.append(
                {
                    "label": key,
                    "values": np.log10(values.astype(float)),
                    "tickvals": np.log10(ticks),
                    "ticktext": [f"{t:.0e}" for t in ticks],
                }
            )
        elif kind == "choices" and not pd.api.types.is_numeric_dtype(values):
            codes = {c: i for i, c in enumerate(sorted(values.astype(str).unique()))}
            dims.append(
                {
                    "label": key,
                    "values": values.astype(str).map(codes),
                    "tickvals": list(codes.values()),
                    "ticktext": list(codes),
                }
            )
        else:
            dims.append({"label": key, "values": values.astype(float)})
    dims.append({"label": "val accuracy", "values": shown["val_accuracy"], "tickformat": ".0%"})
    # Complete trials map into [0.1, 1] of the colour scale by accuracy; pruned ones to 0: grey.
    acc = shown["val_accuracy"].astype(float)
    done = shown["state"] == "complete"
    low, high = acc[done].min() if done.any() else 0, acc[done].max() if done.any() else 1
    colour = np.where(done, 0.1 + 0.9 * (acc - low) / max(high - low, 1e-9), 0.0)
    scale = [[0, PRUNED_GREY], [0.099, PRUNED_GREY], [0.1, "#440154"], [0.55, "#21918c"], [1, "#fde725"]]
    fig = go.Figure(
        go.Parcoords(line={"color": colour, "colorscale": scale, "cmin": 0, "cmax": 1}, dimensions=dims)
    )
    fig.update_layout(height=420, margin={"l": 60, "r": 60, "t": 50, "b": 30})
    return fig


def best_so_far(trials: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for state, style in (
        ("complete", {"color": "#21918c"}),
        ("pruned", {"color": PRUNED_GREY, "symbol": "x"}),
    ):
        part = trials[trials["state"] == state]
        fig.add_trace(
            go.Scatter(x=part["trial"], y=part["val_accuracy"], mode="markers", name=state, marker=style)
        )
    complete = trials[trials["state"] == "complete"].sort_values("trial")
    fig.add_trace(
        go.Scatter(
            x=complete["trial"],
            y=complete["val_accuracy"].cummax(),
            mode="lines",
            name="best so far",
            line={"shape": "hv", "color": "#440154"},
        )
    )
    baseline = trials[trials["baseline"] & (trials["state"] == "complete")]
    if len(baseline):  # `tune --baseline`: the preset's own values, the yardstick to beat
        fig.add_hline(
            y=float(baseline["val_accuracy"].iloc[0]),
            line={"dash": "dot", "color": "#e07b00"},
            annotation_text=f"the preset's values (trial {int(baseline['trial'].iloc[0])})",
        )
    fig.update_layout(
        xaxis_title="trial", yaxis={"title": "validation accuracy", "tickformat": ".0%"}, height=360
    )
    return fig


def importance_chart(importances: dict) -> go.Figure:
    names = list(importances)[::-1]
    fig = go.Figure(
        go.Bar(x=[importances[n] for n in names], y=names, orientation="h", marker_color="#21918c")
    )
    fig.update_layout(
        xaxis={"title": "fANOVA importance (share of the variance explained)", "tickformat": ".0%"},
        height=60 + 40 * len(names),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )
    return fig


st.title("Hyper-parameter studies")
names = loading.study_names()
if not names:
    st.info(
        "No studies yet. Run one (about 90 minutes on 2 CPU cores for 24 trials of 6 epochs):\n\n"
        "`python -m cifar_core tune --model cnn_bn --trials 24 --epochs 6 --data-dir DIR`"
    )
    st.stop()
name = st.selectbox("Study", names, key="tune_study")
try:
    found = loading.study_for(name)
except CifarError as error:
    st.error(f"{name}: {error}")
    st.stop()
info, trials = found["info"], found["trials"]
if trials.empty:
    st.info("This study has no trials yet.")
    st.stop()
counts = trials["state"].value_counts()
cols = st.columns(4)
cols[0].metric("trials", len(trials))
cols[1].metric("complete / pruned", f"{counts.get('complete', 0)} / {counts.get('pruned', 0)}")
cols[2].metric("best validation accuracy", f"{found['best']['val_accuracy']:.2%}" if found["best"] else "-")
cols[3].metric("epochs per trial", info["epochs"])
st.caption(
    f"{info['model']}, {info['sampler']} sampler, median pruning; trials score validation accuracy only "
    f"(data {info['data']['source']}, train limit {info.get('train_limit') or 'none'})."
)
st.subheader("Every trial")
st.plotly_chart(parallel_coordinates(trials, info["space"]), width="stretch", key="tune_parcoords")
left, right = st.columns(2)
with left:
    st.subheader("Which settings mattered")
    if found["importances"]:
        st.plotly_chart(importance_chart(found["importances"]), width="stretch", key="tune_importance")
    else:
        st.caption("Importances need at least two complete trials.")
with right:
    st.subheader("Validation accuracy per trial")
    st.plotly_chart(best_so_far(trials), width="stretch", key="tune_best")
st.subheader("Trials")
table = trials.drop(columns=["val_curve"]).rename(columns=lambda c: c.removeprefix("param:"))
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "val_accuracy": st.column_config.NumberColumn(format="percent"),  # 0.73 -> 73.00%
        **{  # learning rate and weight decay span decades: 2.11e-03, not 0.0021
            key: st.column_config.NumberColumn(format="%.2e")
            for key, spec in info["space"].items()
            if "log" in spec
        },
    },
)
st.download_button("Download the trials (CSV)", table.to_csv(index=False), f"{name}-trials.csv", "text/csv")
if found["best"]:
    st.subheader("The best trial, retrained")
    st.write(
        ", ".join(
            f"`{k}` = {v:.4g}" if isinstance(v, float) else f"`{k}` = {v}"
            for k, v in found["best"]["params"].items()
        )
    )
    runs, _ = loading.load_runs()
    retrained = [r for r in runs if r.study == name]
    if retrained:
        for run in retrained:
            trial = run.manifest["study"]["trial"]
            st.success(
                f"{run.run_id}: test accuracy {run.metrics['test']['accuracy']:.2%} "
                f"({run.metrics['epochs_run']} epochs on all of train, trial {trial})"
            )
        st.page_link("views/leaderboard.py", label="See it on the leaderboard", icon=":material/leaderboard:")
    else:
        st.caption(f"Not retrained yet: `python -m cifar_core tune --retrain {name} --data-dir DIR`")
