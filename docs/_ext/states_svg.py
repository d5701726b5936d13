"""Draw the breaker's states as an SVG: no binary to install (graphviz would need one).

The boxes are the states of :class:`aiocircuitbreaker.State`, the arrows the transitions below.
Everything is drawn in ``currentColor``, so that the picture inlined in the HTML follows the
theme's light and dark modes. ``statediagram.py`` puts it in the pages.
"""

from __future__ import annotations

import math
from html import escape
from typing import NamedTuple

from aiocircuitbreaker import State

WIDTH, HEIGHT = 820, 560
BOX_W, BOX_H = 150, 54


class Node(NamedTuple):
    """A state box, by its centre."""

    state: State
    x: float
    y: float
    note: str


class Edge(NamedTuple):
    """A transition: from one state to another, bent by ``bend`` pixels, with a label."""

    source: State
    target: State
    label: tuple[str, ...]
    bend: float = 0.0
    label_at: tuple[float, float] = (0.0, 0.0)


NODES = (
    Node(State.CLOSED, 210, 120, "calls run"),
    Node(State.OPEN, 690, 120, "calls rejected at once"),
    Node(State.HALF_OPEN, 410, 330, "one probe runs"),
)

EDGES = (
    Edge(
        State.CLOSED,
        State.OPEN,
        ("failure_threshold consecutive failures", "(or the policy trips)"),
        label_at=(450, 88),
    ),
    Edge(
        State.OPEN,
        State.HALF_OPEN,
        ("recovery_timeout has passed", "(seen by the next call or read:", "no timer)"),
        bend=-40,
        label_at=(715, 240),
    ),
    Edge(
        State.HALF_OPEN,
        State.OPEN,
        ("probe fails or runs out of time:", "open for a new period"),
        bend=-40,
        label_at=(470, 200),
    ),
    Edge(
        State.HALF_OPEN,
        State.CLOSED,
        ("probe succeeds", "(or enough of them)"),
        bend=40,
        label_at=(200, 320),
    ),
)

LOOPS = (
    (State.CLOSED, ("success: count = 0", "failure: count + 1", "neutral: no change")),
    (State.HALF_OPEN, ("neutral probe (other exception,", "cancellation): slot freed")),
)

MANUAL = (State.FORCED_OPEN, State.DISABLED, State.METRICS_ONLY)


def _node(state: State) -> Node:
    return next(node for node in NODES if node.state is state)


def _border(node: Node, toward_x: float, toward_y: float) -> tuple[float, float]:
    """Return where the line from the centre of ``node`` toward a point leaves its box."""
    dx, dy = toward_x - node.x, toward_y - node.y
    scale = min(
        (BOX_W / 2) / abs(dx) if dx else math.inf, (BOX_H / 2) / abs(dy) if dy else math.inf
    )
    return node.x + dx * scale, node.y + dy * scale


def _text(x: float, y: float, lines: tuple[str, ...], anchor: str = "middle") -> str:
    spans = "".join(
        f'<tspan x="{x:.0f}" dy="{0 if i == 0 else 15}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}" font-size="12">{spans}</text>'


def _edge(edge: Edge) -> str:
    source, target = _node(edge.source), _node(edge.target)
    mx, my = (source.x + target.x) / 2, (source.y + target.y) / 2
    length = math.hypot(target.x - source.x, target.y - source.y)
    # the control point, ``bend`` pixels off the middle of the straight line
    cx = mx + edge.bend * (target.y - source.y) / length
    cy = my - edge.bend * (target.x - source.x) / length
    x1, y1 = _border(source, cx, cy)
    x2, y2 = _border(target, cx, cy)
    path = f"M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {x2:.1f},{y2:.1f}"
    label = _text(*edge.label_at, edge.label)
    return f'<path d="{path}" fill="none" stroke="currentColor" marker-end="url(#arrow)"/>{label}'


def _loop(state: State, label: tuple[str, ...]) -> str:
    """Return a transition from ``state`` to itself: above the box, or below for HALF_OPEN."""
    node = _node(state)
    left, right = node.x - 30, node.x + 30
    if state is State.CLOSED:
        edge, out = node.y - BOX_H / 2, -45
        text = _text(node.x - 45, edge - 45, label, anchor="end")
    else:
        edge, out = node.y + BOX_H / 2, 45
        text = _text(node.x + 50, edge + 22, label, anchor="start")
    path = f"M{left},{edge} C{left - 10},{edge + out} {right + 10},{edge + out} {right},{edge}"
    return f'<path d="{path}" fill="none" stroke="currentColor" marker-end="url(#arrow)"/>{text}'


def _box(node: Node) -> str:
    x, y = node.x - BOX_W / 2, node.y - BOX_H / 2
    return (
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="none" '
        f'stroke="currentColor" stroke-width="2"/>'
        f'<text x="{node.x}" y="{node.y - 2}" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{node.state.name}</text>'
        f'<text x="{node.x}" y="{node.y + 16}" text-anchor="middle" font-size="11">'
        f"{escape(node.note)}</text>"
    )


def _manual() -> str:
    top = 440
    parts = [
        (
            f'<rect x="20" y="{top}" width="{WIDTH - 40}" height="100" rx="8" fill="none" '
            'stroke="currentColor" stroke-dasharray="6 4"/>'
        ),
        _text(40, top + 24, ("Set by hand, kept until the next change by hand:",), "start"),
    ]
    notes = {
        State.FORCED_OPEN: "force_open(): rejects every call",
        State.DISABLED: "disable(): no breaker at all",
        State.METRICS_ONLY: "metrics_only(): records, never trips",
    }
    for i, state in enumerate(MANUAL):
        x = 40 + i * 260
        parts.append(
            f'<text x="{x}" y="{top + 54}" font-size="14" font-weight="bold">{state.name}</text>'
        )
        parts.append(_text(x, top + 74, (notes[state],), "start"))
    parts.append(
        _text(40, top + 94, ("close() or reset(): CLOSED from any state; open(): OPEN",), "start")
    )
    return "".join(parts)


def render() -> str:
    """Return the state diagram as an SVG document."""
    body = "".join(
        [*(_box(n) for n in NODES), *(_edge(e) for e in EDGES), *(_loop(*lp) for lp in LOOPS)]
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" role="img" font-family="sans-serif" fill="currentColor" '
        f'style="max-width:{WIDTH}px">'
        "<title>The states of a circuit breaker and what moves it between them</title>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="currentColor"/></marker></defs>'
        f"{body}{_manual()}</svg>"
    )
