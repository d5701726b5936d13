"""The ``.. state-diagram::`` directive: the breaker's states as an SVG drawn at build time."""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from states_svg import render


class StateDiagram(SphinxDirective):
    """Insert the state diagram (inline SVG in HTML; its title elsewhere)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        """Return the diagram as raw HTML, and its title as text for other builders."""
        svg = render()
        return [
            nodes.raw("", f'<figure class="state-diagram">{svg}</figure>', format="html"),
            nodes.raw("", "The states of a circuit breaker (see the HTML docs).", format="latex"),
        ]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("state-diagram", StateDiagram)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
