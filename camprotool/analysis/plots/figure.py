"""Figure plumbing shared by every plot: fonts, the figure class, axes and grids.

Figures are built without pyplot (no global state, headless under Agg) and
are :class:`PlotFigure`, which Jupyter shows as a PNG when it is a cell's value.
"""

from __future__ import annotations

import glob
import io
import logging
from contextlib import AbstractContextManager
from functools import lru_cache

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpecBase
from matplotlib.ticker import MaxNLocator

ONLINE, OFFLINE, UNKNOWN = "#2ca02c", "#d62728", "#a8a8a8"
C2S, S2C = "#1f4e9c", "#2b7a2b"  # arrow colours by direction
WARN = "#e07b00"  # protocol violations
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p"]

# Fonts with CJK glyphs for the protocol's Chinese reasons, in order of preference
CJK_FONTS = ["Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "Droid Sans Fallback", "SimHei", "Microsoft YaHei",
             "PingFang SC", "Heiti SC", "Arial Unicode MS"]
CJK_FILES = ["/usr/share/fonts/**/NotoSansCJK-Regular.ttc", "/usr/share/fonts/**/wqy-zenhei.ttc",
             "/usr/share/fonts/**/wqy-microhei.ttc", "/usr/share/fonts/**/DroidSansFallback*.ttf"]


class _QuietWeight(logging.Filter):
    """CJK fonts often come in one weight (WenQuanYi's is 500): matplotlib then logs
    a warning per font size although the glyphs are fine. Drop just that message."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("findfont: Failed to find font weight")


@lru_cache(maxsize=1)
def font_family() -> tuple[str, ...]:
    """The default sans font, then a CJK font when one is installed (glyph fallback).

    matplotlib caches its font list; a CJK font installed after that cache was
    built (``make sysdeps``) is found by its usual file name and added.
    """
    manager = mpl.font_manager.fontManager
    cjk = [name for name in CJK_FONTS if name in {f.name for f in manager.ttflist}][:1]
    if not cjk:
        for pattern in CJK_FILES:
            found = sorted(glob.glob(pattern, recursive=True))
            if found:
                try:
                    manager.addfont(found[0])
                except (OSError, RuntimeError, ValueError):
                    continue
                installed = {f.name for f in manager.ttflist}
                cjk = [name for name in CJK_FONTS if name in installed][:1]
                break
    if cjk:
        logging.getLogger("matplotlib.font_manager").addFilter(_QuietWeight())
    return ("DejaVu Sans", *cjk)


def fonts() -> AbstractContextManager:
    """A context in which text is drawn with :func:`font_family` (CJK reasons readable)."""
    return mpl.rc_context({"font.family": list(font_family())})


class PlotFigure(Figure):
    """A Figure that Jupyter shows as a PNG when it is a cell's value.

    Figures are built without pyplot, so IPython's inline backend may never have
    been switched on (nothing imported pyplot) and would print ``<Figure ...>``;
    ``_repr_png_`` shows the picture in any case, and only once.
    """

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
        return buf.getvalue()


def figure_of(ax: Axes) -> Figure:
    """The figure ``ax`` draws in (the root one if it sits in a subfigure): what a plot
    given an axes returns."""
    fig = ax.get_figure(root=True)
    if fig is None:
        raise ValueError("this axes belongs to no figure")
    return fig


def integer_ticks(axis: Axis) -> None:
    """Ticks on whole numbers only (an axis of counts): matplotlib's default locator is a
    ``MaxNLocator``, told so; a locator the caller set is left alone."""
    locator = axis.get_major_locator()
    if isinstance(locator, MaxNLocator):
        locator.set_params(integer=True)


def new_axes(ax: Axes | None, width: float, height: float) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure of that size with one axes."""
    if ax is not None:
        return figure_of(ax), ax
    fig = PlotFigure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def new_grid(ax: Axes | None, width: float, height: float, nrows: int, ncols: int,
             **kwargs: object) -> tuple[Figure, GridSpecBase]:
    """A grid of ``nrows`` x ``ncols`` cells: a new figure, or the place of a given ``ax``.

    A plot of several panels asked to draw into one axes takes that axes' cell
    of its figure's grid (the axes is removed), so ``fig.subplots(2)`` still
    gives two independent places to draw.
    """
    if ax is None:
        new = PlotFigure(figsize=(width, height), layout="constrained")
        return new, new.add_gridspec(nrows, ncols, **kwargs)
    spec = ax.get_subplotspec()
    if spec is None:
        raise ValueError("this plot has several panels and needs an axes made by "
                         "fig.add_subplot() or fig.subplots() to take its place; "
                         "or leave ax=None for a figure of its own")
    fig = figure_of(ax)
    ax.remove()
    return fig, spec.subgridspec(nrows, ncols, **kwargs)


def plural(n: int, noun: str) -> str:
    """``"1 camera"``, ``"2 cameras"``, ``"5,000 transfers"``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def empty(ax: Axes, title: str, text: str) -> None:
    """Say in the middle of ``ax`` that there is nothing to draw."""
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, color="#555555",
            transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
