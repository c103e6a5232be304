"""Fixtures of the model tests: the simulated shop's default schema, encoded."""

from __future__ import annotations

import pytest

from mtlrec.data.encode import Encoder
from mtlrec.data.synthetic import default_schema


@pytest.fixture(scope="module")
def shop(shop_table):
    """(schema, layout, all 6000 rows encoded) of the session's simulated shop."""
    schema = default_schema()
    encoder = Encoder(schema).fit(shop_table)
    return schema, encoder.layout(), encoder.transform(shop_table)
