"""Plots for the HTML certificate, drawn with matplotlib as SVG text so that the page embeds
them and stays one self-contained file. matplotlib is imported only here, and only when a
report is asked for (extra ``report``)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from pytest_consensus.measure import HistoryFigures

#: Width of the throughput bins, in seconds.
BIN_SECONDS = 0.5
COLORS = {"ok": "#2e7d32", "fail": "#9e9e9e", "info": "#ef6c00"}
FAULT_COLOR = "#e53935"


def matplotlib_missing() -> str | None:
    """Why plots cannot be drawn, or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return (
            "matplotlib is not installed; install it for --consensus-report: "
            "python3 -m pip install 'pytest-consensus[report]'"
        )
    return None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: render to files only
    import matplotlib.pyplot as plt

    return plt


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    _pyplot().close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: it is inlined


def timeline_svg(figures: HistoryFigures, title: str) -> str:
    """Latency of every operation (by outcome) and acknowledged throughput over the test's
    time, with each fault's window shaded and named."""
    plt = _pyplot()
    figure, (latency_axes, throughput_axes) = plt.subplots(
        2, 1, figsize=(9, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    end = max(
        [op.completed or op.invoked for op in figures.operations]
        + [w.end or w.start for w in figures.windows]
        + [1.0]
    )
    for outcome, color in COLORS.items():
        points = [
            (op.completed, (op.latency or 0.0) * 1000)
            for op in figures.operations
            if op.outcome == outcome and op.completed is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            label = {"ok": "acknowledged", "fail": "failed", "info": "unknown outcome"}[outcome]
            latency_axes.scatter(xs, ys, s=6, color=color, label=label, alpha=0.7)
    latency_axes.set_yscale("log")
    latency_axes.set_ylabel("latency (ms)")
    latency_axes.legend(loc="upper right", fontsize=7)
    bins = int(end / BIN_SECONDS) + 1
    counts = [0] * bins
    for op in figures.operations:
        if op.outcome == "ok" and op.completed is not None:
            counts[min(int(op.completed / BIN_SECONDS), bins - 1)] += 1
    throughput_axes.step(
        [n * BIN_SECONDS for n in range(bins)],
        [c / BIN_SECONDS for c in counts],
        where="post",
        color="#1565c0",
    )
    throughput_axes.set_ylabel("acknowledged / s")
    throughput_axes.set_xlabel("seconds since the test's history began")
    for window in figures.windows:
        stop = window.end if window.end is not None else end
        for axes in (latency_axes, throughput_axes):
            axes.axvspan(window.start, stop, color=FAULT_COLOR, alpha=0.12, linewidth=0)
        latency_axes.text(
            window.start,
            1.02,
            window.kind,
            transform=latency_axes.get_xaxis_transform(),
            fontsize=7,
            color=FAULT_COLOR,
        )
    latency_axes.set_title(title, fontsize=9, pad=14)
    return _svg(figure)


def latency_distribution_svg(latencies_ms: Sequence[float], title: str) -> str:
    """A histogram of acknowledged operations' latencies on logarithmic bins."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(9, 2.8))
    positive = [max(value, 0.01) for value in latencies_ms]
    if positive:
        low, high = min(positive), max(positive)
        edges = [low * (high / low) ** (n / 40) for n in range(41)] if high > low else 10
        axes.hist(positive, bins=edges, color="#2e7d32", alpha=0.8)
        axes.set_xscale("log")
    axes.set_xlabel("latency of acknowledged operations (ms)")
    axes.set_ylabel("operations")
    axes.set_title(title, fontsize=9)
    return _svg(figure)
