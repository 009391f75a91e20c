"""Leaderboard: one row per recipe, accuracy and F1 by model, accuracy against cost."""

import numpy as np
import pandas as pd
import streamlit as st
from common import loading, serving

from cifar_core.analysis import report

COSTS = {
    "Parameters": "params",
    "FLOPs per image": "flops",
    "Inference ms/image (batch 1)": "ms_per_image",
    "Training minutes": "train_min",
}


# The table's columns, in order (the engine's runs table has a few more, e.g. write-ups).
COLUMNS = [
    "page",
    "label",
    "family",
    "made_by",
    "params",
    "test_acc",
    "spread",
    "n",
    "test_acc_min",
    "test_acc_max",
    "macro_f1",
    "precision",
    "recall",
    "top3_acc",
    "log_loss",
    "ece",
    "train_acc",
    "val_acc",
    "gap",
    "train_min",
    "epochs",
    "ms_per_image",
    "precisions",
    "precision_policy",
    "train_images",
    "hardware",
    "data",
    "run",
]
DECIMALS = {
    "macro_f1": 3,
    "precision": 3,
    "recall": 3,
    "log_loss": 3,
    "ece": 3,
    "train_min": 1,
    "ms_per_image": 2,
}


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """What the table shows: fractions as percentages (so that every one reads 81.40%)."""
    frame = frame.assign(page="run?run=" + frame["run"])  # the run's own page (views/run.py)
    columns = [c for c in COLUMNS if c in frame.columns]  # a members' table has no group columns
    shown = frame[columns + [c for c in frame.columns if c.startswith("eval:")]].copy()
    for column in shown.columns:
        if column in report.PERCENT_COLUMNS or column.endswith(":acc"):
            shown[column] = shown[column] * 100
    return shown


def column_config(frame: pd.DataFrame, sets: dict) -> dict:
    config = {}
    for column in frame.columns:
        name = report.label(column)
        if column == "page":
            config[column] = st.column_config.LinkColumn(
                "run", display_text=r"run=(.*)$", help="the run's page: architecture, report, training, files"
            )
        elif column in report.PERCENT_COLUMNS or column.endswith(":acc"):
            config[column] = st.column_config.NumberColumn(name, format="%.2f%%")
        elif column in DECIMALS:
            config[column] = st.column_config.NumberColumn(name, format=f"%.{DECIMALS[column]}f")
        elif column == "params":
            config[column] = st.column_config.NumberColumn(name, format="localized")
        else:
            config[column] = st.column_config.Column(name)
        if column.startswith("eval:"):
            _, set_name, _ = column.split(":")
            info = sets[set_name]
            config[column].update(
                {"help": f"Evaluation set {set_name}: {info['n_images']} images from {info['data']}"}
            )
    return config


def table(frame: pd.DataFrame) -> None:
    sets = report.evaluation_sets(runs)
    shown = display_frame(frame)
    st.dataframe(
        shown, hide_index=True, width="stretch", column_config=column_config(shown, sets), key="lb_table"
    )
    st.caption(
        "One row per recipe (runs that differ only in their seed or precision), best mean test "
        "accuracy first: test accuracy and macro F1 are the means over its runs; ± is their "
        "standard deviation, or for a single run (n = 1) the binomial standard error of its "
        "accuracy on its test images. The row's run, training time, precision policy and CPU are "
        "its best run's, whose model the other pages use. Click a column header to sort."
    )
    for row in frame[frame["n"] > 1].itertuples():
        with st.expander(f"{row.label}: {row.n} runs, seeds {row.seeds}; {row.precisions}"):
            members = display_frame(report.runs_table([r for r in runs if r.run_id in row.members]))
            st.dataframe(
                members, hide_index=True, width="stretch", column_config=column_config(members, sets)
            )
    if sets:
        with st.expander(f"Evaluation sets ({len(sets)}): the runs scored on other images", expanded=True):
            for name, info in sets.items():
                st.markdown(
                    f"**{name}**: {info['n_images']} images from `{info['data']}`, "
                    f"{len(info['runs'])} run(s) scored "
                    f"(`python -m cifar_core evaluate --run RUN --data-dir DIR --name {name}`)"
                )
    st.download_button("Download CSV", frame.to_csv(index=False), "leaderboard.csv", "text/csv", key="lb_csv")


def bar_charts(frame: pd.DataFrame) -> None:
    import plotly.express as px  # here, not at the top: the table a first visit shows needs no plotly

    left, right = st.columns(2)
    for column, metric, title in ((left, "test_acc", "Test accuracy"), (right, "macro_f1", "Macro F1")):
        ranked = frame.sort_values(metric)
        fig = px.bar(
            ranked,
            x=metric,
            y="label",
            color="family",
            orientation="h",
            title=title,
            text_auto=".3f",
            labels=report.LABELS,
            # one order for all families: colouring by family must not regroup the bars
            category_orders={"label": ranked["label"].tolist()[::-1]},  # best on top
        )
        column.plotly_chart(fig, width="stretch", key=f"lb_bar_{metric}")


def _flops(run) -> float:
    from cifar_core.errors import CifarError

    try:
        return serving.architecture_for(run)[1]["flops"]
    except CifarError:
        return np.nan


def cost_scatter(frame: pd.DataFrame) -> None:
    import plotly.express as px
    import plotly.graph_objects as go

    cost_label = st.radio("Cost axis", list(COSTS), horizontal=True, key="lb_cost")
    x = COSTS[cost_label]
    if x == "flops":  # counted by the engine per model, once per server
        frame = frame.assign(flops=frame["run"].map({run.run_id: _flops(run) for run in runs}))
    points = frame.dropna(subset=[x]).sort_values([x, "test_acc"], ascending=[True, False])
    best, frontier = -np.inf, []
    for _, row in points.iterrows():  # Pareto: nothing cheaper is at least as accurate
        if row["test_acc"] > best:
            frontier.append(row)
            best = row["test_acc"]
    fig = px.scatter(
        points,
        x=x,
        y="test_acc",
        color="family",
        hover_name="label",
        log_x=x in ("params", "flops"),
        title=f"Accuracy vs {cost_label.lower()}",
        labels=report.LABELS,
        text="label",
    )
    fig.update_traces(textposition="top center")
    fig.add_trace(
        go.Scatter(
            x=[r[x] for r in frontier],
            y=[r["test_acc"] for r in frontier],
            mode="lines",
            name="Pareto frontier",
            line={"dash": "dash"},
        )
    )
    st.plotly_chart(fig, width="stretch", key="lb_scatter")
    st.caption(f"On the frontier: {', '.join(r['label'] for r in frontier)}")


st.title("Leaderboard")
runs = loading.require_runs()
if runs:
    frame = report.groups_table(runs)
    # The charts render only when their tab is opened (on_change="rerun" gives tabs `.open`):
    # plotly's 4.7 MB of JavaScript and three figures made a new session open ~1.5 s later
    # on this CPU, and the table is what a visitor reads first.
    tabs = st.tabs(["Table", "Accuracy & F1 by model", "Accuracy vs cost"], key="lb_view", on_change="rerun")
    for tab, show in zip(tabs, (table, bar_charts, cost_scatter)):
        if tab.open:
            with tab:
                show(frame)
