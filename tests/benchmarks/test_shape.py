"""The benchmark shape's generator and FLOP count (benchmarks/_shape.py): the numbers the speed
tables divide by must be right."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import _shape  # noqa: E402


def test_generated_table_has_the_shape():
    table = _shape.generate(5000, n_seq=1, seed=3)
    assert table.num_rows == 5000
    for name, size in zip(_shape.cat_names(), _shape.CAT_SIZES):
        ids = table[name].to_numpy()
        assert ids.min() >= 0 and ids.max() < size
    lengths = np.diff(np.asarray(table["s0"].combine_chunks().offsets))
    assert lengths.min() >= 0 and lengths.max() <= _shape.SEQ_LEN
    click, purchase = table["click"].to_numpy(), table["purchase"].to_numpy()
    assert 0.1 < click.mean() < 0.6 and not (purchase > click).any()  # purchase only after a click


def test_mmoe_flops_per_sample_match_a_hand_count():
    enc = _shape.encoder(_shape.generate(2000), post_click=False)
    model = _shape.build("mmoe", enc.layout(), enc.schema.tasks)
    d = 20 * 16 + 8  # embedded fields + numeric columns
    experts = 4 * (d * 256 + 256 * 128)
    gates = 2 * d * 4
    towers = 2 * (128 * 64 + 64 * 1)
    assert _shape.linear_flops(model) == 2 * (experts + gates + towers)
    assert len(enc.vocabs_["c0"]) == 1_000_000  # every id of the 1M field, as the peers' tables
