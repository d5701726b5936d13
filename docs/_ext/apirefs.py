"""Make the reference read the public names, and the docstrings read as they are written.

- Our classes live in private modules (``aiocircuitbreaker._core.State``) and are documented
  where users import them (``aiocircuitbreaker.State``). A cross-reference to a private path,
  or a bare name used in a docstring (``Listener``, ``CircuitBreakerMonitor.statistics``,
  ``add_listener``), is resolved to the documented public object when there is exactly one.
- A property's docstring starts with a sentence that may contain a colon ("Seconds until the
  breaker admits a probe: ..."); napoleon would read the words before it as a type. Starting
  the docstring with an empty reST comment keeps it a sentence.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

_PRIVATE = re.compile(r"^aiocircuitbreaker(?:\.\w+)*\._\w+\.")


def _candidates(target: str) -> list[str]:
    """Return the public names ``target`` may stand for, most likely first."""
    name = _PRIVATE.sub("", target.lstrip("~."))
    return [
        f"aiocircuitbreaker.{name}",
        f"aiocircuitbreaker.typing.{name}",
        f"aiocircuitbreaker.storage.{name}",
        f"aiocircuitbreaker.CircuitBreaker.{name}",
    ]


def _resolve(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.Element | None:
    """Resolve a reference that names a public object by a private path or a bare name."""
    if node.get("refdomain") != "py":
        return None
    domain: Any = env.get_domain("py")
    for candidate in _candidates(node["reftarget"]):
        if candidate in domain.objects:
            node["reftarget"] = candidate
            return domain.resolve_xref(
                env, node.get("refdoc", ""), app.builder, node["reftype"], candidate, node, contnode
            )
    return None


def _sentence_first(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Keep the first line of a property's docstring a sentence (napoleon reads a type)."""
    if what in {"property", "attribute"} and lines and ":" in lines[0]:
        lines[:0] = ["..", ""]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the reference resolver and the docstring fix (before napoleon's)."""
    app.connect("missing-reference", _resolve)
    app.connect("autodoc-process-docstring", _sentence_first, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
