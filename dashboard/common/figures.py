"""The pages' common charts, built with ``plotly.graph_objects``: plotly.express costs a
page's first visit about 0.4 s more (its import and its data-frame machinery), for
figures this simple."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def grouped_bars(
    frame: pd.DataFrame, x: str, y: str, color: str | None, title: str, labels: dict | None = None
) -> go.Figure:
    """One bar per row of ``frame``, grouped by ``x``, one colour (and legend entry) per value
    of ``color`` in the order they first appear."""
    labels = labels or {}
    groups = [(None, frame)] if color is None else [(k, g) for k, g in frame.groupby(color, sort=False)]
    fig = go.Figure(
        [
            go.Bar(
                x=group[x],
                y=group[y],
                name=str(key) if key is not None else y,
                hovertemplate=f"{labels.get(x, x)}: %{{x}}<br>{labels.get(y, y)}: %{{y}}"
                f"<extra>{key or ''}</extra>",
            )
            for key, group in groups
        ]
    )
    fig.update_layout(
        title=title,
        barmode="group",
        xaxis_title=labels.get(x, x),
        yaxis_title=labels.get(y, y),
        legend_title_text=labels.get(color, color) if color else None,
        showlegend=color is not None,
    )
    return fig


def heatmap(
    matrix, x: list, y: list, title: str, colorscale: str, text_format: str | None, labels: dict
) -> go.Figure:
    """``matrix`` drawn with its values written in the cells (``text_format``: e.g. ".2f";
    None: as they are), the first row at the top."""
    matrix = np.asarray(matrix)
    text = matrix if text_format is None else np.vectorize(lambda v: format(v, text_format))(matrix)
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=x,
            y=y,
            text=text,
            texttemplate="%{text}",
            colorscale=colorscale,
            colorbar={"title": {"text": labels.get("color", "")}},
            hovertemplate=f"{labels.get('y', 'y')} %{{y}}, {labels.get('x', 'x')} %{{x}}: %{{text}}"
            "<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title=labels.get("x"),
        yaxis_title=labels.get("y"),
        yaxis_autorange="reversed",
    )
    return fig


DASHES = ("solid", "dash", "dot", "dashdot")


def lines(
    frame: pd.DataFrame,
    x: str,
    y: str,
    color: str,
    title: str,
    dash: str | None = None,
    log_y: bool = False,
) -> go.Figure:
    """One line with markers per value of ``color`` (and of ``dash``, drawn solid, dashed, ...
    in the order its values first appear); same colour for the same ``color`` value."""
    colours = {key: colour(i) for i, key in enumerate(pd.unique(frame[color]))}
    styles = {key: DASHES[i % len(DASHES)] for i, key in enumerate(pd.unique(frame[dash]))} if dash else {}
    keys = [color, dash] if dash else [color]
    fig = go.Figure()
    for key, group in frame.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        name, style = key if dash else (key[0], None)
        fig.add_trace(
            go.Scatter(
                x=group[x],
                y=group[y],
                mode="lines+markers",
                name=f"{name}, {style}" if dash else str(name),
                legendgroup=str(name),
                line={"color": colours[name], "dash": styles.get(style, "solid")},
            )
        )
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, yaxis_type="log" if log_y else None)
    return fig


PALETTE = (  # plotly's default colourway: a run keeps its colour on its train and validation lines
    "#636efa",
    "#EF553B",
    "#00cc96",
    "#ab63fa",
    "#FFA15A",
    "#19d3f3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
)


def colour(i: int) -> str:
    """The i-th colour of ``PALETTE``, round again after the last."""
    return PALETTE[i % len(PALETTE)]
