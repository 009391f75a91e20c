"""One run's page (``?run=<id>``): its facts, how to reproduce it, its architecture and cost,
the classification report, how it trained and where it fails. Everything is computed by
the engine (``cifar_core.analysis.runcard``, ``cifar_core.analysis.architecture``); this page draws it."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import loading, serving, widgets

from cifar_core.analysis import robustness, runcard
from cifar_core.errors import CifarError
from cifar_core.serving import exports

st.title("Run")
zoo, _ = loading.load_runs()
rungs, _ = loading.load_runs(ladders=True)
everything = {run.run_id: run for run in zoo + rungs}
if not everything:
    loading.require_runs()
    st.stop()

wanted = st.query_params.get("run")
ids = list(everything)
if wanted and wanted not in everything:
    st.warning(f"No run {wanted!r} in `{loading.artifacts_dir()}`: pick one below.")
elif wanted and wanted != st.session_state.get("run_url"):  # a link or a typed address: follow it
    st.session_state["run_pick"] = ids.index(wanted)
labels = [loading.run_label(everything[run_id]) for run_id in ids]
chosen = st.selectbox("Run", range(len(ids)), format_func=labels.__getitem__, key="run_pick")
run = everything[ids[chosen]]
st.query_params["run"] = st.session_state["run_url"] = run.run_id  # the address names the run shown
names = run.class_names

st.header(run.label)
h = runcard.header(run)
cols = st.columns(5)
cols[0].metric("Test accuracy", f"{h['test accuracy']:.2%}")
cols[1].metric("Macro F1", f"{h['macro F1']:.3f}")
cols[2].metric("Validation accuracy", f"{h['validation accuracy']:.2%}" if h["validation accuracy"] else "—")
cols[3].metric("Train minutes", f"{h['train minutes']:.1f}")
best = f" (best {h['best epoch']})" if h["best epoch"] else ""
cols[4].metric("Epochs", f"{h['epochs']}{best}")
st.caption(
    f"{h['precision']} · {h['hardware']} · {h['data']} (checksum `{(h['data checksum'] or '')[:16]}…`) · "
    f"{h['date']} ({runcard.age(run)}) · run id `{run.run_id}`"
)

st.subheader("Reproduce")
facts = runcard.reproduce(run)
if facts.get("command"):
    st.code(facts["command"], language="bash")
rest = {key: str(value) for key, value in facts.items() if key != "command" and value is not None}
st.table(pd.DataFrame({"value": list(rest.values())}, index=list(rest)))

st.subheader("Architecture and cost")
try:
    table, total = serving.architecture_for(run)
except CifarError as error:
    st.warning(f"The architecture is not available: {error}")
    table, total = None, None
if table is not None:
    if not run.has_model:
        st.caption("This run stores no model file: the layers are those of its config, built again.")
    shown = table.drop(columns=["children"]).rename(columns={"flops": "FLOPs"})
    st.dataframe(shown, hide_index=True, width="stretch", key="run_layers")
    for row in table.itertuples():
        if isinstance(row.children, list) and row.children:
            with st.expander(f"{row.layer}: {len(row.children)} layers inside ({row.type})"):
                inner = pd.DataFrame(row.children).drop(columns=["children"], errors="ignore")
                st.dataframe(inner.rename(columns={"flops": "FLOPs"}), hide_index=True, width="stretch")
cost = st.columns(5)
size = run.model_path.stat().st_size / 2**20 if run.has_model else None
cost[0].metric("Model file", f"{size:.1f} MB" if size is not None else "none")
cost[1].metric("Parameters", f"{run.metrics.get('params', 0):,}")
cost[2].metric(
    "FLOPs per image",
    f"{total['flops'] / 1e6:,.1f} M" if total else "—",
    help="TensorFlow's profiler on the traced inference graph; a multiply-add counts as two",
)
cost[3].metric("Multiply-adds", f"{total['multiply_adds'] / 1e6:,.1f} M" if total else "—")
cost[4].metric("Train minutes", f"{h['train minutes']:.1f}")
measured = st.session_state.get(f"run_cost_{run.run_id}")
if run.has_model and st.button("Measure speed and memory on this machine", key="run_measure"):
    with st.spinner("Timing batch 1 and batch 500 through the predictor the pages use…"):
        try:
            measured = st.session_state[f"run_cost_{run.run_id}"] = serving.measure_cost(run)
        except CifarError as error:
            st.warning(str(error))
if measured:
    memory = measured["peak_memory_mb_batch1"]
    st.write(
        f"Batch 1: **{measured['latency_ms_batch1']:.2f} ms** per image · batch 500: "
        f"**{measured['images_per_s_batch500']:,.0f} images/s** · one prediction adds "
        f"**{'—' if memory is None else f'{memory:.1f} MB'}** of memory · on {measured['cpu']} "
        f"({measured['measured_at']})"
    )
if run.has_model:
    report = (run.manifest.get("exports") or {}).get("onnx")
    if report:
        st.caption(f"ONNX export (what the pages serve), checked when made: {exports.summary(report)}")
    else:
        st.caption(f"No export recorded in this run: `python -m cifar_core export {run.run_id}`")

st.subheader("Classification report")
report = runcard.classification_report(run)
st.dataframe(
    report.style.format({"precision": "{:.4f}", "recall": "{:.4f}", "f1-score": "{:.4f}"}, na_rep=""),
    width="stretch",
    key="run_report",
)
st.download_button(
    "Download the report (CSV)", report.to_csv().encode(), f"{run.run_id}-report.csv", "text/csv"
)

normalise = st.radio("Confusion matrix", ["counts", "row-normalised"], horizontal=True, key="run_norm")
matrix = run.confusion.astype(float)
if normalise == "row-normalised":
    matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
xs, ys = np.meshgrid(np.arange(len(names)), np.arange(len(names)))
fig = go.Figure(
    [
        go.Heatmap(
            z=matrix,
            x=names,
            y=names,
            colorscale="Blues",
            hoverinfo="skip",
            text=np.round(matrix, 2) if normalise != "counts" else matrix.astype(int),
            texttemplate="%{text}",
        ),
        # Invisible markers on the cells: Streamlit reports clicks on points, not on heatmaps.
        go.Scatter(
            x=[names[i] for i in xs.ravel()],
            y=[names[j] for j in ys.ravel()],
            mode="markers",
            marker={"size": 28, "opacity": 0.01, "symbol": "square"},
            customdata=np.stack([ys.ravel(), xs.ravel()], axis=1).tolist(),  # plain lists: [t, p] back
            hovertemplate="true %{y}, predicted %{x}<extra></extra>",
            showlegend=False,
        ),
    ]
)
fig.update_layout(
    xaxis_title="predicted",
    yaxis_title="true",
    yaxis_autorange="reversed",
    height=520,
    title="Click a cell to see its images",
    clickmode="event+select",
)
event = st.plotly_chart(fig, key="run_confusion", on_select="rerun", selection_mode="points", width="stretch")
clicked = (event.selection or {}).get("points", []) if event else []
cell = clicked[0].get("customdata") if clicked else None
if isinstance(cell, (list, tuple)) and len(cell) == 2:  # [true, predicted] of the clicked cell
    st.session_state["run_pair"] = (names[int(cell[0])], names[int(cell[1])])

st.markdown("**Where it fails**: its five most frequent confusions")
confusions = runcard.top_confusions(run)
buttons = st.columns(max(len(confusions), 1))
for col, row in zip(buttons, confusions.itertuples()):
    if col.button(f"{row.true} → {row.predicted}: {row.images}", key=f"run_conf_{row.true}_{row.predicted}"):
        st.session_state["run_pair"] = (row.true, row.predicted)

pair = st.session_state.get("run_pair")
if pair and pair[0] in names and pair[1] in names:
    t, p = names.index(pair[0]), names.index(pair[1])
    hits = runcard.pair_images(run, t, p)
    kind = "correct" if t == p else "mistakes"
    st.markdown(f"**{pair[0]} predicted as {pair[1]}**: {len(hits)} test images ({kind}), surest first")
    probs = run.predictions["probs"]
    shown = hits[:32]
    widgets.image_grid(
        widgets.test_images(run, shown), [f"#{i} · {pair[1]} {probs[i, p]:.0%}" for i in shown]
    )
    if len(hits) > len(shown):
        st.caption(f"… and {len(hits) - len(shown)} more (the Mistakes page shows up to 256)")

st.subheader("Training")
history = run.history
fig = go.Figure()
for column, name, dash in (("accuracy", "train", "solid"), ("val_accuracy", "validation", "dash")):
    if column in history:
        fig.add_scatter(x=history["epoch"] + 1, y=history[column], name=name, line={"dash": dash})
if h["best epoch"]:
    fig.add_vline(x=h["best epoch"], line_dash="dot", annotation_text=f"best epoch {h['best epoch']}")
for epoch in runcard.lr_cuts(history):
    fig.add_vline(x=epoch + 0.5, line_color="grey", line_dash="dash", annotation_text="LR cut")
boundary = run.manifest.get("phase_boundary_epoch")
if boundary:
    fig.add_vline(x=boundary + 0.5, line_dash="dot", line_color="green", annotation_text="fine-tuning starts")
fig.update_layout(xaxis_title="epoch", yaxis_title="accuracy", height=360)
st.plotly_chart(fig, key="run_curves", width="stretch")
for note in runcard.training_notes(run):
    st.markdown(f"- {note}")

st.subheader("Evaluations on other image sets")
if run.evaluations:
    st.dataframe(pd.DataFrame(run.evaluations).T, width="stretch", key="run_evals")
else:
    st.caption(f"None yet: `python -m cifar_core evaluate --run {run.run_id} --data-dir my_photos/`")

st.subheader("Robustness")
robust = robustness.summary(run)
if robust is None:
    st.caption(f"Not measured yet: `python -m cifar_core robustness {run.run_id} --data-dir DATA`")
else:
    cols = st.columns(4)
    cols[0].metric("clean (one view)", f"{robust['clean']:.1%}")
    cols[1].metric("mean corruption accuracy", f"{robust['mean corruption accuracy']:.1%}")
    cols[2].metric("drop", f"{robust['drop'] * 100:.1f} pts")
    mce = robust["relative mCE"]
    cols[3].metric(f"relative mCE vs {robustness.REFERENCE_MODEL}", "-" if mce != mce else f"{mce:.2f}")
    table = pd.DataFrame(robust["accuracy"], index=[f"severity {s}" for s in range(1, 6)]).T
    st.dataframe(table.style.format("{:.1%}"), width="stretch", key="run_robustness")
    st.caption(
        f"{robustness.LABEL}, on {robust['images']:,} test images; worst: {robust['worst']} "
        f"({robust['worst at severity 5']:.1%} at severity 5)."
    )

st.subheader("Files")
files = runcard.run_files(run)
st.dataframe(
    files.assign(KB=(files["bytes"] / 1024).round(1)).drop(columns=["bytes"]),
    hide_index=True,
    key="run_files",
)
