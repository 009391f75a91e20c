"""A write-up's ladder, reproduced: one run per rung, each a single change on the last."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import figures, loading, widgets

from cifar_core.ladders import LADDERS, ladder_table, rung_runs

SPLITS = {"train": "#636efa", "val": "#00cc96", "test": "#ef553b"}
NOISE = 0.05  # McNemar p at or above this: the change reads as noise


def gain_label(row) -> str:
    if pd.isna(row["gain"]):
        return ""
    if "gain_low" in row and pd.notna(row.get("gain_low")):  # several seeds: the gain's interval
        real = row["gain_low"] > 0 or row["gain_high"] < 0
        low, high = row["gain_low"] * 100, row["gain_high"] * 100
        verdict = "real" if real else "noise"
        return f"{row['gain'] * 100:+.1f} pts (95% {low:+.1f} to {high:+.1f}, n = {int(row['n'])}, {verdict})"
    verdict = "noise" if row["p_value"] >= NOISE else "real"
    return f"{row['gain'] * 100:+.1f} pts (p={row['p_value']:.2g}, {verdict})"


def step_chart(table: pd.DataFrame):
    """This run's train / validation / test accuracy per rung (solid) and the write-up's
    (dotted); hover and the labels give each rung's change and its test gain."""
    fig = go.Figure()
    x = [f"{r.rung}. {r.slug}" for r in table.itertuples()]
    for split, colour in SPLITS.items():
        fig.add_trace(
            go.Scatter(
                x=x,
                y=table[split],
                name=f"{split} (this run)",
                mode="lines+markers",
                line={"shape": "hv", "color": colour},
                # customdata[0]: the rung's index, what a click selects (widgets.selected_points)
                customdata=table[["change"]]
                .assign(gain=table.apply(gain_label, axis=1))
                .assign(index=table["rung"].astype(int) - 1)[["index", "change", "gain"]],
                hovertemplate="%{customdata[1]}<br>" + split + " %{y:.1%}<br>%{customdata[2]}<extra></extra>",
            )
        )
        reported = table[f"reported_{split}"]
        if reported.notna().any():
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=reported,
                    name=f"{split} (write-up)",
                    mode="lines+markers",
                    line={"shape": "hv", "color": colour, "dash": "dot"},
                    marker={"symbol": "diamond-open"},
                    hovertemplate="write-up " + split + " %{y:.1%}<extra></extra>",
                )
            )
    for row, label in zip(table.itertuples(), x):
        if pd.notna(row.gain):
            fig.add_annotation(x=label, y=row.test, text=f"{row.gain * 100:+.1f}", showarrow=False, yshift=12)
    fig.update_layout(
        yaxis={"tickformat": ".0%", "title": "accuracy"},
        xaxis={"title": "rung (each adds one change to the one before)"},
        legend={"orientation": "h", "y": -0.3},
        height=460,
        clickmode="event+select",
    )
    return fig


def gap_chart(table: pd.DataFrame):
    frame = pd.DataFrame(
        {
            "rung": [f"{r.rung}. {r.slug}" for r in table.itertuples()] * 2,
            "train - test": list(table["gap"]) + list(table["reported_train"] - table["reported_test"]),
            "source": ["this run"] * len(table) + ["write-up"] * len(table),
        }
    )
    fig = figures.grouped_bars(
        frame, "rung", "train - test", "source", "Overfitting: train minus test accuracy"
    )
    fig.update_layout(yaxis={"tickformat": ".0%"}, height=360)
    return fig


def rung_details(found: dict, table: pd.DataFrame, index: int) -> None:
    run = found.get(index)
    if run is None:
        st.info(f"Rung {index + 1} is not trained yet.")
        return
    row = table.iloc[index]
    st.subheader(f"Rung {index + 1}: {row['change']}")
    facts = f"{row['epochs']:.0f} epochs, {row['minutes']:.1f} min, {row['params']:,.0f} parameters"
    st.caption(f"Run `{run.run_id}`: {facts}")
    left, right = st.columns(2)
    h = run.history
    curves = pd.concat(
        [
            pd.DataFrame({"epoch": h["epoch"] + 1, "accuracy": h[column], "split": split})
            for split, column in (("train", "accuracy"), ("validation", "val_accuracy"))
        ]
    )
    left.plotly_chart(
        figures.lines(curves, "epoch", "accuracy", "split", "Training curves"),
        width="stretch",
        key="ladder_curves",
    )
    previous = max((i for i in found if i < index), default=None)
    if previous is None:
        right.info("The first trained rung: nothing to compare its confusion matrix with.")
        return
    fig = widgets.confusion_change_figure(
        found[previous], run, f"Confusion matrix change from rung {previous + 1}"
    )
    right.plotly_chart(fig, width="stretch", key="ladder_confusion")


st.title("Ladders: one change at a time")
runs, _ = loading.load_runs(ladders=True)
trained = [name for name, ladder in LADDERS.items() if rung_runs(ladder, runs)]
name = st.selectbox(
    "Ladder",
    list(LADDERS),
    index=list(LADDERS).index(trained[0]) if trained else 0,
    format_func=lambda n: f"{n} ({len(rung_runs(LADDERS[n], runs))}/{len(LADDERS[n].rungs)} rungs trained)",
    key="ladder_name",
)
ladder = LADDERS[name]
st.caption(f"{ladder.title}. Write-up figures: {ladder.source}. {ladder.epochs_note}.")
table = ladder_table(ladder, runs)
if table["run_id"].isna().all():
    st.info(
        "No rung of this ladder is trained here yet. Train them (finished rungs are kept):\n\n"
        f"```bash\npython -m cifar_core ladder run {name} --data-dir /path/to/cifar10\n```"
    )
else:
    event = st.plotly_chart(step_chart(table), width="stretch", key="ladder_steps", on_select="rerun")
    st.caption(
        f"Gains are in test accuracy over the rung before, with McNemar's exact test on the same "
        f"test images: p >= {NOISE} reads as noise. Where a rung has several seeds (`ladder run "
        "--seeds 0,1,2`), its test accuracy is their mean and its gain has a 95% interval (a "
        "bootstrap over test images and seeds): an interval that includes 0 reads as noise. "
        "Click a point to open its rung below."
    )
    shown = table.assign(gain_note=table.apply(gain_label, axis=1))[
        [
            "rung",
            "change",
            "train",
            "val",
            "test",
            "gain_note",
            "reported_train",
            "reported_val",
            "reported_test",
            "epochs",
            "minutes",
        ]
    ]
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "gain_note": "test gain",
            **{
                c: percent
                for c in ("train", "val", "test", "reported_train", "reported_val", "reported_test")
            },
            "minutes": st.column_config.NumberColumn(format="%.1f"),
        },
    )
    for row in table[table["idle"].notna()].itertuples():
        st.info(f"Rung {row.rung} predicts every test image as rung {row.rung - 1} does: {row.idle}.")
    off = table[(table["test"] - table["reported_test"]).abs() >= 0.03]
    for row in off.itertuples():
        st.warning(
            f"Rung {row.rung} ({row.change}): the write-up reports {row.reported_test:.1%} test accuracy, "
            f"this run {row.test:.1%}."
        )
    st.plotly_chart(gap_chart(table), width="stretch", key="ladder_gap")
    clicked = next(iter(widgets.selected_points(event)), None)
    trained_rungs = [int(r) - 1 for r in table.dropna(subset=["run_id"])["rung"]]
    picked = st.selectbox(
        "Rung",
        trained_rungs,
        index=trained_rungs.index(clicked) if clicked in trained_rungs else 0,
        format_func=lambda i: f"{i + 1}. {ladder.rungs[i].change}",
        key=f"ladder_rung_{name}_{clicked}",
    )
    rung_details(rung_runs(ladder, runs), table, picked)
