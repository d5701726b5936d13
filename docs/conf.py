"""Sphinx configuration of the aiocircuitbreaker documentation.

Build it from the repository root with ``python -m sphinx -W --keep-going -n docs docs/_build``
(after ``pip install -e ".[docs]"``). Nothing here reaches the network: there is no
intersphinx, so names of the standard library and of third-party packages are written as
plain ``code`` or resolved nowhere (see ``nitpick_ignore_regex``).
"""

from __future__ import annotations

import sys
from importlib.metadata import version as _version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "aiocircuitbreaker"
author = "aiocircuitbreaker contributors"
copyright = "aiocircuitbreaker contributors"  # noqa: A001 - the name Sphinx reads
release = _version("aiocircuitbreaker")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "statediagram",
    "apirefs",
]

root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_theme = "furo"
html_title = f"aiocircuitbreaker {release}"
pygments_style = "sphinx"
pygments_dark_style = "monokai"

# Every warning is an error in CI (-W), and every cross-reference must resolve (-n), except
# those into other projects' documentation, which this offline build cannot reach.
nitpicky = True
nitpick_ignore_regex = [
    # Other projects' objects: the standard library's and third-party packages' (httpx.Client,
    # asyncio.CancelledError...). Their documentation is not reachable offline (no intersphinx),
    # so a dotted name outside aiocircuitbreaker is left unlinked; our own must resolve.
    (r"py:.*", r"(?!aiocircuitbreaker\b)[A-Za-z_]\w*(\.~?\w+)+"),
    # builtins, and the typing names that signatures show unqualified
    (
        r"py:.*",
        (
            r"(BaseException|Exception|ExceptionGroup|BaseExceptionGroup|TypeError|ValueError"
            r"|RuntimeError|KeyError|TimeoutError|OSError|ConnectionError|object|type|int|float"
            r"|str|bytes|bool|None|tuple|list|dict|set|frozenset|TracebackType|Any|Callable"
            r"|Awaitable|Coroutine|Iterable|Iterator|Generator|AsyncIterator|AsyncGenerator"
            r"|Mapping|Sequence|ParamSpec|TypeVar|Protocol|Concatenate|NoReturn|Self|Literal"
            r"|Union|Optional)"
        ),
    ),
    # names that the exporters' signatures take from their libraries
    (r"py:.*", r"(Metric|Meter|MeterProvider|Asynchronous|CollectorRegistry|Callable\[\[\])"),
    # type variables of the public signatures, and private helper types (the reference shows
    # the public names: the apirefs extension resolves private paths to them where it can)
    (r"py:.*", r"(aiocircuitbreaker\.(\w+\.)*)?[A-Z](_co)?"),
    (r"py:.*", r"(aiocircuitbreaker\.(\w+\.)*)?_\w+(\.\w+)*"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
