"""Check every internal link of the built HTML documentation: the file exists, and the anchor.

Run after the build, as CI does::

    python docs/check_links.py docs/_build/html

Sphinx's nitpicky mode (``-n``) already reports cross-references that do not resolve; this
catches what it cannot see: hand-written links to pages or anchors (``.html#...``), images,
stylesheets and scripts. Links with a scheme (``https:``, ``mailto:``) are not followed: the
check needs no network.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    """The anchors a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        if "id" in values:
            self.anchors.add(values["id"])
        if tag == "a" and "name" in values:
            self.anchors.add(values["name"])
        for attribute in ("href", "src"):
            if attribute in values and tag in {"a", "img", "link", "script", "iframe"}:
                self.links.append(values[attribute])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _problem(path: Path, link: str, pages: dict[Path, _Page]) -> str | None:
    """Return what is wrong with ``link`` on the page at ``path``, or None if it resolves."""
    parts = urlsplit(link)
    if parts.scheme or link.startswith("//"):
        return None  # not internal: not followed
    target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
    if target.is_dir():
        target /= "index.html"
    if not target.exists():
        return "no such file"
    if parts.fragment and target.suffix == ".html":
        anchors = pages[target].anchors if target in pages else _parse(target).anchors
        if unquote(parts.fragment) not in anchors:
            return "no such anchor"
    return None


def check(root: Path) -> list[str]:
    """Return a description of every broken internal link under ``root``."""
    pages = {path.resolve(): _parse(path) for path in root.rglob("*.html")}
    errors = []
    for path, page in pages.items():
        for link in page.links:
            problem = _problem(path, link, pages)
            if problem:
                errors.append(f"{path.relative_to(root.resolve())}: {link}: {problem}")
    return errors


def main() -> int:
    """Check the directory given on the command line; print what is broken."""
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} BUILT_HTML_DIRECTORY", file=sys.stderr)
        return 2
    root = Path(sys.argv[1])
    errors = check(root)
    for error in errors:
        print(error, file=sys.stderr)
    count = sum(1 for _ in root.rglob("*.html"))
    print(f"{count} pages, {len(errors)} broken internal links")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
