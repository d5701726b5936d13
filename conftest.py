"""Collect the Python blocks of README.rst and docs/**/*.rst as tests (see tests/docs_examples)."""

from __future__ import annotations

from tests.docs_examples import make_sybil

pytest_collect_file = make_sybil(patterns=["*.rst"]).pytest()
