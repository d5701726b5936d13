"""The documentation: its examples' harness, its reference, its diagram, its Grafana dashboard."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sybil import Document

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerGroup, CountWindow, RatePolicy, State
from aiocircuitbreaker.prometheus import register

from .docs_examples import PARSERS, ROOT

DOCS = ROOT / "docs"
DASHBOARD = DOCS / "grafana" / "aiocircuitbreaker.json"


def _run(tmp_path: Path, text: str) -> list[BaseException | None]:
    """Evaluate every example of ``text`` as the suite does; return what each one raised."""
    path = tmp_path / "page.rst"
    path.write_text(text)
    outcomes: list[BaseException | None] = []
    for example in Document.parse(str(path), *PARSERS):
        try:
            example.evaluate()
        except Exception as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


def test_each_block_runs_in_a_namespace_of_its_own(tmp_path: Path) -> None:
    """A block cannot use a name an earlier block defined: every block must run alone."""
    page = ".. code-block:: python\n\n    x = 1\n\n.. code-block:: python\n\n    print(x)\n"
    first, second = _run(tmp_path, page)
    assert first is None
    assert isinstance(second, NameError)


def test_tests_defined_in_a_block_are_run(tmp_path: Path) -> None:
    """A block's test functions run, sync and async: a failing one fails the block."""
    page = (
        ".. code-block:: python\n\n    def test_passes():\n        assert True\n\n"
        ".. code-block:: python\n\n    async def test_fails():\n        assert 1 == 2\n\n"
        ".. code-block:: python\n\n    def test_takes_a_fixture(tmp_path):\n"
        "        raise AssertionError\n"
    )
    passing, failing, with_fixture = _run(tmp_path, page)
    assert passing is None
    assert isinstance(failing, AssertionError)
    assert with_fixture is None  # a test needing fixtures is left to pytest


def test_a_skip_directive_skips_the_next_block_only(tmp_path: Path) -> None:
    """``.. skip: next`` skips one block (the convention for blocks needing a server)."""
    page = (
        "..\n   Needs a server.\n\n.. skip: next\n\n"
        ".. code-block:: python\n\n    raise RuntimeError\n\n"
        ".. code-block:: python\n\n    raise RuntimeError\n"
    )
    directive, skipped, following = _run(tmp_path, page)
    assert directive is None
    assert skipped is None  # not run
    assert isinstance(following, RuntimeError)


def _public(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    return [name for name in module.__all__ if not name.startswith("__")]


REFERENCE = {
    "aiocircuitbreaker": "api.rst",
    "aiocircuitbreaker.testing": "testing.rst",
    "aiocircuitbreaker.storage": "storage.rst",
    "aiocircuitbreaker.prometheus": "prometheus.rst",
    "aiocircuitbreaker.opentelemetry": "opentelemetry.rst",
    "aiocircuitbreaker.typing": "typing.rst",
}


@pytest.mark.parametrize("module_name", sorted(REFERENCE))
def test_the_reference_documents_every_public_name(module_name: str) -> None:
    """Every name of a public module's ``__all__`` has an entry (or a pointer) in its page."""
    page = (DOCS / "reference" / REFERENCE[module_name]).read_text()
    documented = set(re.findall(r"^\.\. (?:auto)?\w+:: +(\w+)", page, re.MULTILINE))
    documented |= set(re.findall(r"^ {10}(\w+)$", page, re.MULTILINE))  # grouped .. data::
    documented |= set(re.findall(r":class:`aiocircuitbreaker\.(\w+)`", page))  # re-exports
    missing = [name for name in _public(module_name) if name not in documented]
    assert not missing


def test_the_state_diagram_shows_every_state() -> None:
    """The diagram drawn at build time names every member of State, and is well-formed SVG."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        states_svg = importlib.import_module("states_svg")
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    svg = states_svg.render()
    ElementTree.fromstring(svg)  # raises on malformed XML
    for state in State:
        assert f">{state.name}<" in svg


# -- the Grafana dashboard -------------------------------------------------------------------

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip


def _scrape() -> list[tuple[str, dict[str, str]]]:
    """Scrape the real exporter over an open breaker and one with a policy: (name, labels)."""
    registry = CollectorRegistry()
    register(registry)
    breakers = [
        CircuitBreaker(name="docs.plain"),
        CircuitBreaker(name="docs.policy", policy=RatePolicy(CountWindow(10))),
    ]
    breakers[1].call(lambda: None)  # a window that holds calls: the rate gauges have samples
    breakers[0].open()
    group = CircuitBreakerGroup("docs.group")
    group.breaker("tenant-1").open()  # a group's breaker: exported with its key
    text = generate_latest(registry).decode()
    return [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _exported() -> dict[str, set[str]]:
    """Return the name of every sample the exporter produces, with its label names."""
    samples: dict[str, set[str]] = {}
    for name, labels in _scrape():
        samples.setdefault(name, set()).update(labels)
    return samples


def _label_values() -> dict[str, set[str]]:
    """Return every label name the exporter uses, with the values seen."""
    values: dict[str, set[str]] = {}
    for _, labels in _scrape():
        for label, value in labels.items():
            values.setdefault(label, set()).add(value)
    return values


def _queries(dashboard: dict[str, object]) -> list[str]:
    """Return every PromQL expression of the dashboard: targets, variables, annotations."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"expr", "query", "definition"} and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    return [query for query in found if query != "prometheus"]  # the data source's type


def _parse(query: str) -> tuple[set[str], set[str]]:
    """Return the metric names and the label names that a PromQL expression uses."""
    labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", query))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", query):
        labels |= {label.strip() for label in grouping.split(",") if label.strip()}
    label_values = re.fullmatch(r"label_values\((\w+)(?:\{[^}]*\})?,\s*(\w+)\)", query)
    if label_values:
        return {label_values[1]}, labels | {label_values[2]}
    bare = re.sub(
        r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring)\s*\([^)]*\)', " ", query
    )
    names = {
        word
        for word, call in re.findall(r"\b([a-zA-Z_:][\w:]*)\b\s*(\()?", bare)
        if not call and word.lower() not in PROMQL_WORDS
    }
    return names, labels


def _matched_values(query: str) -> list[tuple[str, str]]:
    """Return the (label, value) pairs a query's matchers ask for, but not Grafana variables."""
    pairs = []
    for label, operator, value in re.findall(r"(\w+)\s*(=~|=)\s*\"([^\"]*)\"", query):
        if "$" in value:
            continue
        alternatives = value.split("|") if operator == "=~" else [value]
        pairs.extend((label, alternative) for alternative in alternatives)
    return pairs


def test_the_dashboard_asks_for_label_values_the_exporter_uses() -> None:
    """A matcher such as ``state="forced_open"`` names a value that the exporter writes."""
    values = _label_values()
    assert {"closed", "open", "half_open", "forced_open", "disabled"} <= values["state"]
    pairs = [
        pair
        for query in _queries(json.loads(DASHBOARD.read_text()))
        for pair in _matched_values(query)
    ]
    assert ("state", "forced_open") in pairs
    unknown = [(label, value) for label, value in pairs if value not in values.get(label, set())]
    assert not unknown


def test_the_parser_finds_metrics_and_labels() -> None:
    """The query reader sees past functions, matchers, ranges and groupings."""
    names, labels = _parse(
        'sum by (name, outcome) (rate(a_total{name=~"$name", state="x"}[$__rate_interval])) '
        "or vector(0) > bool b"
    )
    assert names == {"a_total", "b"}
    assert labels == {"name", "outcome", "state"}
    assert _parse('label_values(m{name=~"$name"}, key)') == ({"m"}, {"name", "key"})


def test_the_grafana_dashboard_queries_metrics_the_exporter_produces() -> None:
    """Every metric and label a dashboard query uses is one the Prometheus exporter exports."""
    exported = _exported()
    queries = _queries(json.loads(DASHBOARD.read_text()))
    assert len(queries) >= 10
    every_label = set().union(*exported.values())
    used: set[str] = set()
    for query in queries:
        names, labels = _parse(query)
        assert names, query
        unknown = names - exported.keys()
        assert not unknown, (query, unknown)
        assert labels <= every_label, (query, labels - every_label)
        for name in names:
            assert labels <= exported[name] | {"name"}, (query, name, labels)
        used |= names
    assert used == set(exported), set(exported) - used  # and it shows every exported metric
