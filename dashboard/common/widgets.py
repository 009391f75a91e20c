"""Widgets and figures the pages share: test images, image and heatmap grids, the confusion
change figure, and what a user selected in a chart."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cifar_core import artifacts
from cifar_core.artifacts import Run
from common.serving import heatmap_for


def available_test_indices(run: Run) -> np.ndarray:
    """Test images that can be shown here: all if the data is on this machine, else thumbnails."""
    return artifacts.available_test_indices(run)


def test_images(run: Run, indices) -> list[np.ndarray | None]:
    """32x32 test images by index, decoded by the engine (None where not available here)."""
    return artifacts.test_images(run, indices)


def image_grid(images: list, captions: list[str], columns: int = 8) -> None:
    """Show images in a grid; missing images become a short note."""
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, image, caption in zip(
            cols, images[start : start + columns], captions[start : start + columns]
        ):
            with col:
                show_image(image, caption)


def show_image(image, caption: str) -> None:
    """One image with its caption, or the caption and a note when it is not available."""
    if image is None:
        st.caption(f"(image not available) {caption}")
    else:
        st.image(image, caption=caption, width="stretch")


def heatmap_grid(pixels: np.ndarray, wanted: list[tuple[Run, str, str]], columns: int) -> None:
    """For each (run, class name, caption) in ``wanted``: the run's heatmap for that class
    over ``pixels``, in a grid of at most ``columns``; a run that cannot explain says why."""
    from cifar_core.analysis.saliency import overlay
    from cifar_core.errors import CifarError

    images, captions = [], []
    for run, class_name, caption in wanted:
        try:
            heat, how = heatmap_for(run, pixels, run.class_names.index(class_name))
        except (CifarError, ValueError) as error:
            images.append(None)
            captions.append(f"{run.label}: no heatmap ({error})")
            continue
        images.append(overlay(np.asarray(pixels, dtype=np.uint8), heat))
        captions.append(f"{caption} · {how}")
    image_grid(images, captions, columns=min(columns, max(len(images), 1)))


def confusion_change_figure(before: Run, after: Run, title: str):
    """``after``'s confusion matrix minus ``before``'s, each cell's count change written in
    it and coloured by what it means: blue where ``after`` is better (more right on the
    diagonal, fewer of a mistake off it), red where it is worse; the legend says so."""
    import plotly.graph_objects as go

    from cifar_core.evaluate import confusion_change

    change, better = confusion_change(before.confusion, after.confusion)
    names = list(after.class_names)
    limit = max(int(np.abs(change).max()), 1)
    fig = go.Figure(
        go.Heatmap(
            z=better,
            x=names,
            y=names,
            text=[[f"{v:+d}" if v else "0" for v in row] for row in change],
            texttemplate="%{text}",
            colorscale="RdBu",
            zmin=-limit,
            zmax=limit,
            colorbar={"title": {"text": "blue: better<br>red: worse"}},
            hovertemplate="true %{y}, predicted %{x}: %{text} images<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    return fig


def selected_points(event) -> list[int]:
    """The ``customdata[0]`` (here: test image indices) of the points a user selected in an
    ``st.plotly_chart(..., on_select="rerun")`` (box, lasso or click), sorted, no repeats."""
    selection = getattr(event, "selection", None)
    if selection is None and isinstance(event, dict):
        selection = event.get("selection")
    points = (selection or {}).get("points", []) if hasattr(selection or {}, "get") else []
    out = set()
    for point in points:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if data is not None:
            out.add(int(data))
    return sorted(out)
