"""How the test suite runs the Python blocks of README.rst and docs/**/*.rst (with sybil).

- Every ``.. code-block:: python`` runs on its own, in a fresh namespace: a block may not lean on
  names defined by an earlier one, so a reader can copy any block and run it.
- A block that defines ``test_*`` functions taking no arguments also runs them, as pytest would
  (an ``async def`` one on a new event loop), so a test shown in the docs is a test that passes.
- A block that cannot run on its own (it needs a server, say) is preceded by ``.. skip: next``
  (an reST comment, invisible in the built docs) and a comment line saying why.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from pathlib import Path
from types import FunctionType

from sybil import Example, Sybil
from sybil.evaluators.python import pad
from sybil.parsers.rest import CodeBlockParser, SkipParser


def evaluate_alone(example: Example) -> None:
    """Run one Python block in a namespace of its own, then the tests it defines."""
    __tracebackhide__ = True
    source = pad(example.parsed, example.line + example.parsed.line_offset)
    code = compile(source, example.path, "exec", dont_inherit=True)
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(code, namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test") and _defined_here(value, example.path):
            result = value()
            if inspect.iscoroutine(result):
                asyncio.run(result)
    namespace.clear()  # drop the example's breakers (the monitor holds them weakly)...
    gc.collect()  # ...now, even those in reference cycles: later examples see the monitor


def _defined_here(value: object, path: str) -> bool:
    """Whether ``value`` is a test function without parameters defined by the block."""
    return (
        isinstance(value, FunctionType)
        and value.__code__.co_filename == path
        and not inspect.signature(value).parameters
    )


ROOT = Path(__file__).resolve().parent.parent


PARSERS = (CodeBlockParser(language="python", evaluator=evaluate_alone), SkipParser())


def make_sybil(patterns: list[str]) -> Sybil:
    """Return the Sybil collecting the examples of the root's files matching ``patterns``."""
    return Sybil(parsers=list(PARSERS), patterns=patterns, path=str(ROOT))
