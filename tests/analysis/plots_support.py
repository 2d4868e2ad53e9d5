"""Helpers for the plot tests: hand-written tables, and what a figure shows."""

from __future__ import annotations

import io

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from camprotool.analysis import schema

T0 = pd.Timestamp("2025-11-28 09:00:00", tz="UTC")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: a tick label that reads alone: a clock time, optionally after a month-day
CLOCK = r"^(\d\d-\d\d )?\d\d:\d\d(:\d\d(\.\d{1,6})?)?$"


def at(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def frame(spec: dict[str, str], rows: list[dict]) -> pd.DataFrame:
    """A table with the schema's columns and dtypes, from a few hand-written rows."""
    if not rows:
        return schema.empty_frame(spec)
    df = pd.DataFrame(rows)
    for name, dtype in spec.items():
        if name not in df:  # unset: zero for plain numbers, missing otherwise
            fill = 0 if dtype in ("int64", "bool") else None
            df[name] = pd.Series(fill, index=df.index, dtype=object).astype(dtype)
    return schema.conform(df, spec)


def render(fig: Figure) -> np.ndarray:
    """Render to PNG (Agg); check the bytes are a PNG that is not blank; the pixels."""
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    data = buf.getvalue()
    assert data[:8] == PNG_SIGNATURE
    pixels = mpimg.imread(io.BytesIO(data), format="png")
    w, h = fig.get_size_inches() * 60
    assert pixels.shape[0] == pytest.approx(h, abs=2) and pixels.shape[1] == pytest.approx(w, abs=2)
    assert pixels[..., :3].var() > 0.002, "the image is blank"
    return pixels


def shown_ticklabels(axis) -> list[str]:
    """The tick labels the axis draws (the figure is laid out first, as when shown)."""
    axis.figure.draw_without_rendering()
    lo, hi = sorted(axis.get_view_interval())
    return [t.label1.get_text() or t.label2.get_text() for t in axis.get_major_ticks()
            if lo - 1e-9 <= t.get_loc() <= hi + 1e-9]


def ticklabels(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def texts(ax, gid: str) -> list:
    """The texts of one kind a plot tagged (``label``, ``frame``, ``gap``, ``rst``...)."""
    return [t for t in ax.texts if t.get_gid() == gid]


def named_lines(ax) -> list:
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def facecolors(ax) -> set[tuple]:
    colors = set()
    for coll in ax.collections:
        for c in coll.get_facecolors():
            colors.add(tuple(np.round(c[:3], 2)))
    return colors


def rgb(hex_color: str) -> tuple:
    return tuple(np.round([int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)], 2))
