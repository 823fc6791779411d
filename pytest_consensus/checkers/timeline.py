"""A self-contained HTML picture of a history: one lane per client, one bar per operation
from invocation to completion, the counterexample highlighted (as Porcupine draws it)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from pytest_consensus.checkers.linearizability import LinearizabilityResult
from pytest_consensus.checkers.models import Model
from pytest_consensus.checkers.operations import Operation

LANE_HEIGHT = 26
STEP_WIDTH = 14
LEFT_MARGIN = 70
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.2em; } .verdict-bad { color: #b00020; } .verdict-good { color: #1b7f3b; }
svg text { font-size: 11px; } .lane { fill: #f6f6f6; }
.ok { fill: #9ad0a8; stroke: #4c9a62; } .fail { fill: #d6d6d6; stroke: #999; }
.info { fill: #f5d6a0; stroke: #c98b1c; stroke-dasharray: 4 2; }
.culprit { stroke: #b00020; stroke-width: 2.5; } .blocked { fill: #f29a9a; }
.order { fill: #1a4b8c; font-weight: bold; } pre { background: #f6f6f6; padding: 1em; }
.legend span { display: inline-block; padding: 0 0.6em; margin-right: 0.5em; border: 1px solid; }
"""


def render_timeline(
    operations: Sequence[Operation],
    model: Model,
    result: LinearizabilityResult,
    title: str,
) -> str:
    """The page for one history; shows the failing key's operations when there is one."""
    example = result.counterexample
    shown = list(operations)
    if example is not None:
        shown = [o for o in operations if model.include(o) and model.partition(o) == example.key]
    culprits = {o.id for o in example.operations} if example else set()
    blocked = example.blocked.id if example and example.blocked else None
    order = {o.id: n + 1 for n, (o, _) in enumerate(example.longest_prefix)} if example else {}
    positions = sorted({o.call for o in shown} | {o.ret for o in shown if o.ret is not None})
    x_of = {p: n for n, p in enumerate(positions)}
    last = len(positions) + 1
    lanes = sorted({o.process for o in shown}, key=lambda p: (isinstance(p, str), str(p)))
    lane_of = {p: n for n, p in enumerate(lanes)}
    width = LEFT_MARGIN + (last + 2) * STEP_WIDTH
    height = len(lanes) * LANE_HEIGHT + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
    for process, lane in lane_of.items():
        y = lane * LANE_HEIGHT
        parts.append(
            f'<rect class="lane" x="0" y="{y + 2}" width="{width}" height="{LANE_HEIGHT - 4}"/>'
        )
        parts.append(f'<text x="4" y="{y + 17}">client {html.escape(str(process))}</text>')
    for operation in shown:
        start = LEFT_MARGIN + x_of[operation.call] * STEP_WIDTH
        end = last if operation.ret is None else x_of[operation.ret]
        stop = max(LEFT_MARGIN + end * STEP_WIDTH, start + STEP_WIDTH // 2)
        y = lane_of[operation.process] * LANE_HEIGHT + 5
        classes: list[str] = [operation.status]
        if operation.id in culprits:
            classes.append("culprit")
        if operation.id == blocked:
            classes.append("blocked")
        label = html.escape(operation.describe())
        parts.append(
            f'<rect class="{" ".join(classes)}" x="{start}" y="{y}" width="{stop - start}" '
            f'height="{LANE_HEIGHT - 10}" rx="3"><title>{label}</title></rect>'
        )
        text = f"{operation.f} {_short(operation)}"
        parts.append(f'<text x="{start + 3}" y="{y + 12}">{html.escape(text)}</text>')
        if operation.id in order:
            parts.append(
                f'<text class="order" x="{start}" y="{y - 1}">{order[operation.id]}</text>'
            )
    parts.append("</svg>")
    if result.linearizable is False:
        verdict = '<p class="verdict-bad">not linearizable</p>'
        detail = f"<pre>{html.escape(example.describe(model))}</pre>" if example else ""
    elif result.linearizable is None:
        verdict, detail = "<p>unknown: the time budget ran out</p>", ""
    else:
        verdict, detail = '<p class="verdict-good">linearizable</p>', ""
    legend = (
        '<p class="legend"><span class="ok">ok</span><span class="fail">failed</span>'
        '<span class="info">unknown outcome</span><span class="culprit">in the minimal '
        'counterexample</span><span class="blocked">could not be placed</span> '
        "blue numbers: the longest linearizable order found</p>"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{verdict}{legend}<div>{''.join(parts)}</div>{detail}"
        f"<p>{result.operations} operations on {result.keys} keys, checked in "
        f"{result.seconds:.3f} s with the {html.escape(model.name)} model.</p></body></html>\n"
    )


def _short(operation: Operation) -> str:
    value: Any = operation.output if operation.f in ("get", "read") else operation.value
    text = "nil" if value is None else str(value)
    return text if len(text) <= 12 else text[:11] + "…"
