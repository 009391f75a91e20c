"""Training curves: loss and accuracy per epoch, several runs overlaid, phases marked."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import figures, loading

from cifar_core.analysis import seeds


def group_bands(runs, chosen_runs, metric: str) -> None:
    """Each seed group among the chosen runs: its mean per epoch with a band (min-max or
    ± SD, switchable), train and validation."""
    groups = [g for g in seeds.group_runs(runs) if g.n > 1 and any(r in g.members for r in chosen_runs)]
    if not groups:
        return
    st.subheader("Seed groups: mean and spread")
    band = st.radio("Band", ["min–max", "± SD"], horizontal=True, key="curves_band")
    fig = go.Figure()
    for i, group in enumerate(groups):
        colour = figures.colour(i)
        for split, column, dash in (("train", metric, "solid"), ("validation", f"val_{metric}", "dash")):
            if column not in group.best.history or group.best.history[column].isna().all():
                continue
            b = seeds.curve_band(group, column)
            low, high = (
                (b["min"], b["max"]) if band == "min–max" else (b["mean"] - b["sd"], b["mean"] + b["sd"])
            )
            name = f"{group.label} ({split}, n = {group.n})"
            fig.add_trace(
                go.Scatter(
                    x=list(b["epoch"]) + list(b["epoch"])[::-1],
                    y=list(high) + list(low)[::-1],
                    fill="toself",
                    fillcolor=colour,
                    opacity=0.2,
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=name,
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=b["epoch"],
                    y=b["mean"],
                    name=name,
                    legendgroup=name,
                    line={"color": colour, "dash": dash},
                )
            )
    fig.update_layout(
        title=f"{metric} per epoch: mean over seeds, band {band}", xaxis_title="epoch", yaxis_title=metric
    )
    st.plotly_chart(fig, width="stretch", key="curves_groups")


st.title("Training curves")
runs = loading.require_runs()
if runs:
    labels = loading.by_label(loading.one_per_recipe(runs))
    chosen = st.multiselect("Runs", list(labels), default=list(labels)[:3], key="curves_runs")
    metric = st.radio("Metric", ["accuracy", "loss"], horizontal=True, key="curves_metric")
    if not chosen:
        st.info("Choose at least one run.")
    else:
        rows = []
        for label in chosen:
            run = labels[label]
            h = run.history
            for split, column in (("train", metric), ("validation", f"val_{metric}")):
                rows.append(
                    pd.DataFrame(
                        {"epoch": h["epoch"] + 1, "value": h[column], "run": run.label, "split": split}
                    )
                )
        data = pd.concat(rows)
        fig = figures.lines(
            data,
            "epoch",
            "value",
            "run",
            f"{metric} per epoch (solid: train, dashed: validation)",
            dash="split",
        )
        for label in chosen:
            run = labels[label]
            boundary = run.manifest["phase_boundary_epoch"]
            if boundary:
                fig.add_vline(
                    x=boundary + 0.5,
                    line_dash="dot",
                    annotation_text=f"{run.label}: fine-tuning starts",
                )
        st.plotly_chart(fig, width="stretch", key="curves_main")
        group_bands(runs, [labels[label] for label in chosen], metric)

        lr_rows = [
            pd.DataFrame(
                {
                    "epoch": labels[lab].history["epoch"] + 1,
                    "learning_rate": labels[lab].history["learning_rate"],
                    "run": labels[lab].label,
                }
            )
            for lab in chosen
        ]
        if lr_rows:
            lr = pd.concat(lr_rows)
            fig = figures.lines(
                lr, "epoch", "learning_rate", "run", "Learning rate at the end of each epoch", log_y=True
            )
            st.plotly_chart(fig, width="stretch", key="curves_lr")
            for label in chosen:
                h = labels[label].history
                if labels[label].manifest["config"]["lr_schedule"] == "plateau":
                    drops = h.index[h["learning_rate"] < 0.8 * h["learning_rate"].shift(1)]
                    if len(drops):
                        epochs = ", ".join(str(int(h.loc[i, "epoch"]) + 1) for i in drops)
                        st.caption(f"{labels[label].label}: learning rate cut after epoch(s) {epochs}")
