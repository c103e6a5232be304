"""Fixtures for the adapter tests: the shared public-data samples (a test skips, naming the missing
file, when they are absent) and loading a source through the registry and its option checks."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared():
    """shared('census-income') -> the path under ../shared/data, or a skip naming it."""

    def get(relative: str) -> Path:
        path = SHARED / relative
        if not path.exists():
            pytest.skip(f"shared data file missing: {path}")
        return path

    return get


@pytest.fixture(scope="session")
def load():
    """load(source, path, **data_keys) -> Source, as `data.source: <source>` would load it."""
    from mtlrec.config import parse_config
    from mtlrec.data.sources import load_source

    def run(source: str, path, **data):
        return load_source(parse_config({"data": {"source": source, "path": str(path), **data}}).data)

    return run
