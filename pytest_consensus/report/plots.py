"""Plots for the HTML certificate, drawn with matplotlib as SVG text so that the page embeds
them and stays one self-contained file. matplotlib is imported only here, and only when a
report is asked for (extra ``report``)."""

from __future__ import annotations

import bisect
import io
from collections.abc import Sequence
from typing import Any

from pytest_consensus.report.measure import HistoryFigures

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


def throughput_steps(
    acknowledged_at: Sequence[float], end: float
) -> tuple[list[float], list[float]]:
    """Acknowledged operations per second in bins of BIN_SECONDS from 0 to ``end`` (the
    test's last operation or fault), as the corners of a step line that reaches ``end``.
    The last bin is usually shorter: its rate is divided by its own width, not a full one."""
    end = max(end, max(acknowledged_at, default=0.0), BIN_SECONDS / 10)
    edges = [n * BIN_SECONDS for n in range(int(end / BIN_SECONDS) + 1)]
    if edges[-1] < end:
        edges.append(end)
    counts = [0] * (len(edges) - 1)
    for moment in acknowledged_at:
        counts[min(bisect.bisect_right(edges, moment) - 1, len(counts) - 1)] += 1
    rates = [count / (edges[n + 1] - edges[n]) for n, count in enumerate(counts)]
    return edges, [*rates, rates[-1]]


def plain_numbers(axis: Any) -> None:
    """Tick labels of a logarithmic axis as plain numbers (0.1, 1, 10, 100), not powers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


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
    plain_numbers(latency_axes.yaxis)
    latency_axes.set_ylabel("latency (ms)")
    if latency_axes.get_legend_handles_labels()[0]:
        latency_axes.legend(loc="upper right", fontsize=7)
    times, rates = throughput_steps(
        [op.completed for op in figures.operations if op.outcome == "ok" and op.completed],
        end,
    )
    throughput_axes.step(times, rates, where="post", color="#1565c0")
    throughput_axes.set_xlim(left=0.0, right=end * 1.02)
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
        plain_numbers(axes.xaxis)
    axes.set_xlabel("latency of acknowledged operations (ms)")
    axes.set_ylabel("operations")
    axes.set_title(title, fontsize=9)
    return _svg(figure)
