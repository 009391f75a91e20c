"""The data: what the runs trained and were tested on, and test labels that look wrong."""

import numpy as np
import pandas as pd
import streamlit as st
from common import figures, loading, widgets

from cifar_core import artifacts
from cifar_core.analysis import crossrun
from cifar_core.data import datafacts
from cifar_core.errors import CifarError

PER_CLASS = 8  # sample images per class
SUSPECTS = 24  # label-error candidates shown


@st.cache_data(show_spinner="Looking for label errors (confident learning)…", max_entries=8)
def _issues(signature: tuple, _runs) -> pd.DataFrame:
    return crossrun.label_issues(_runs)


def overview(run, facts) -> None:
    names = run.class_names
    folder = artifacts.data_folder(run)
    source = run.manifest["data"]
    st.write(
        f"**Source**: {source['source']} · checksum `{source['checksum'][:16]}…` · "
        f"{source['n_train']:,} train, {source['n_val']:,} validation, {source['n_test']:,} test images"
    )
    if folder is not None:
        st.caption(f"Images: from the data folder `{folder}`, which is on this machine.")
    else:
        st.caption(
            "Images: the data folder is not on this machine, so this page uses the facts and the "
            f"{len(run.thumbnails['index'])} test thumbnails stored with the run."
        )
    if facts is None:
        counts = {"test": np.bincount(run.predictions["y_true"], minlength=len(names)).tolist()}
        st.info(
            "This run has no stored data facts (train and validation balance, channel statistics): "
            f"`python -m cifar_core embed {run.run_id} --data-dir DIR` adds them. Test balance below."
        )
    else:
        counts = facts["class_counts"]
    balance = pd.DataFrame(
        [{"class": n, "split": s, "images": c[i]} for s, c in counts.items() for i, n in enumerate(names)]
    )
    fig = figures.grouped_bars(balance, "class", "images", "split", "Class balance as the run used it")
    st.plotly_chart(fig, width="stretch", key="data_balance")
    if facts is not None:
        c1, c2 = st.columns(2)
        stats = pd.DataFrame(
            {"mean": facts["channel_mean"], "std": facts["channel_std"]}, index=["red", "green", "blue"]
        )
        c1.write("**Train split, per channel (0-255)**")
        c1.dataframe(stats.style.format("{:.1f}"), width="stretch")
        shape = "x".join(str(v) for v in facts["image_shape"])
        c2.write(f"**As the models see them**: {shape} uint8 RGB")
        for split, info in (facts["files"] or {}).items():
            exts = ", ".join(f"{k} {v:,}" for k, v in info["extensions"].items())
            sizes = ", ".join(f"{k} ({v})" for k, v in info["sizes"].items())
            formats = ", ".join(f"{k} ({v})" for k, v in info["formats"].items())
            c2.write(
                f"**{split}**: {info['files']:,} files ({exts}); "
                f"in {info['sampled']} read: {sizes}; {formats}"
            )
    st.subheader("Samples per class (test split)")
    available = widgets.available_test_indices(run)
    picks = datafacts.samples_per_class(run.predictions["y_true"], available, len(names), PER_CLASS)
    for name, indices in zip(names, picks):
        st.caption(name)
        widgets.image_grid(widgets.test_images(run, indices), [f"#{i}" for i in indices], columns=PER_CLASS)


def wrong_view(runs) -> None:
    st.subheader("Test images each model gets wrong, per class")
    table = crossrun.wrong_per_class(runs)
    fig = figures.heatmap(
        table.to_numpy(),
        list(table.columns),
        list(table.index),
        "",
        "Reds",
        None,
        {"x": "true class", "y": "run"},
    )
    st.plotly_chart(fig, width="stretch", key="data_wrong")


def label_errors(runs) -> None:
    st.subheader("Possible label errors")
    signature = tuple(r.run_id for r in runs)
    try:
        issues = _issues(signature, runs)
    except ImportError:
        st.warning("cleanlab is not installed here: `pip install cleanlab`.")
        return
    every = int(issues["every_model"].sum())
    st.write(
        f"Confident learning (cleanlab) on the {len(runs)} runs' averaged test probabilities flags "
        f"**{len(issues)}** of {len(runs[0].predictions['y_true']):,} test images; every run disagrees "
        f"with the label on **{every}** of them. Most suspect first: tick the ones whose label looks wrong."
    )
    marked = st.session_state.setdefault("data_marked", set())
    shown = issues.head(SUSPECTS)
    pictures = widgets.test_images(runs[0], shown["index"].to_numpy())
    columns = 6
    for start in range(0, len(shown), columns):
        for col, (_, row), image in zip(
            st.columns(columns),
            shown.iloc[start : start + columns].iterrows(),
            pictures[start : start + columns],
        ):
            with col:
                index = int(row["index"])
                caption = (
                    f"#{index} labelled {row['label']} ({row['p_label']:.0%}); "
                    f"models: {row['models_say']} ({row['p_models']:.0%}), "
                    f"{row['runs_disagreeing']}/{len(runs)} runs"
                )
                widgets.show_image(image, caption)
                if st.checkbox("label looks wrong", value=index in marked, key=f"data_mark_{index}"):
                    marked.add(index)
                else:
                    marked.discard(index)
    if marked:
        st.write(f"**Accuracy without the {len(marked)} marked image(s)** (this session only)")
        table = crossrun.accuracy_without(runs, marked)
        st.dataframe(
            table.style.format({"accuracy": "{:.2%}", "without_marked": "{:.2%}"}),
            width="stretch",
            hide_index=True,
        )
    with st.expander(f"All {len(issues)} flagged images as a table"):
        st.dataframe(issues, width="stretch", hide_index=True)


st.title("The data")
runs = loading.require_runs()
if runs:
    run = loading.pick_run(runs, "Run (its data, its split)", key="data_run")
    section = st.radio(
        "Show",
        ["Overview", "Mistakes per class", "Possible label errors"],
        horizontal=True,
        key="data_section",
    )
    try:
        facts = loading.data_facts_for(run)
    except CifarError as error:
        st.warning(f"{run.run_id}: {error}")
        facts = None
    same = [
        r
        for r in crossrun.same_test_set(runs)
        if r.manifest["data"]["checksum"] == run.manifest["data"]["checksum"]
    ]
    if section == "Mistakes per class":
        wrong_view(same or [run])
    elif section == "Possible label errors":
        if len(same) < 2:
            st.info("Label errors need at least two runs on the same test set.")
        else:
            label_errors(same)
    else:
        overview(run, facts)
