"""Leaderboard: one row per run, accuracy and F1 by model, accuracy against cost."""

import common
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

COSTS = {"Parameters": "params", "Inference ms/image": "ms_per_image", "Training minutes": "train_min"}


def table(frame: pd.DataFrame) -> None:
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "test_acc": st.column_config.NumberColumn("test acc", format="percent"),
            "macro_f1": st.column_config.NumberColumn("macro F1", format="%.3f"),
            "params": st.column_config.NumberColumn("params", format="localized"),
            "train_min": st.column_config.NumberColumn("train min", format="%.1f"),
            "gap": st.column_config.NumberColumn("train-test gap", format="percent"),
        },
    )
    st.download_button("Download CSV", frame.to_csv(index=False), "leaderboard.csv", "text/csv", key="lb_csv")


def bar_charts(frame: pd.DataFrame) -> None:
    left, right = st.columns(2)
    for column, metric, title in ((left, "test_acc", "Test accuracy"), (right, "macro_f1", "Macro F1")):
        ranked = frame.sort_values(metric)
        fig = px.bar(
            ranked,
            x=metric,
            y="model",
            color="family",
            orientation="h",
            title=title,
            text_auto=".3f",
            # one order for all families: colouring by family must not regroup the bars
            category_orders={"model": ranked["model"].tolist()[::-1]},  # best on top
        )
        column.plotly_chart(fig, width="stretch", key=f"lb_bar_{metric}")


def cost_scatter(frame: pd.DataFrame) -> None:
    cost_label = st.radio("Cost axis", list(COSTS), horizontal=True, key="lb_cost")
    x = COSTS[cost_label]
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
        hover_name="model",
        log_x=x == "params",
        title=f"Accuracy vs {cost_label.lower()}",
        text="model",
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
    st.caption(f"On the frontier: {', '.join(r['model'] for r in frontier)}")


st.title("Leaderboard")
runs = common.require_runs()
if runs:
    frame = common.leaderboard_frame(runs)
    sort_by = st.selectbox(
        "Sort by", ["test_acc", "macro_f1", "params", "train_min", "ms_per_image", "ece"], key="lb_sort"
    )
    ascending = sort_by in ("params", "train_min", "ms_per_image", "ece")
    frame = frame.sort_values(sort_by, ascending=ascending).reset_index(drop=True)
    # The charts render only when their tab is opened (on_change="rerun" gives tabs `.open`):
    # plotly's 4.7 MB of JavaScript and three figures made a new session open ~1.5 s later
    # on this CPU, and the table is what a visitor reads first.
    tabs = st.tabs(["Table", "Accuracy & F1 by model", "Accuracy vs cost"], key="lb_view", on_change="rerun")
    for tab, show in zip(tabs, (table, bar_charts, cost_scatter)):
        if tab.open:
            with tab:
                show(frame)
