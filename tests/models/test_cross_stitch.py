"""Cross-stitch units: initial mixing, and columns that do not mix when the units are the identity."""

from __future__ import annotations

import torch

from mtlrec.config import ExperimentConfig
from mtlrec.models import build_model
from mtlrec.models.cross_stitch import CrossStitchUnit


def test_units_start_near_the_identity_and_rows_sum_to_one():
    alpha = CrossStitchUnit(4, keep=0.7).alpha.detach()
    torch.testing.assert_close(alpha.sum(1), torch.ones(4))
    assert torch.allclose(alpha.diagonal(), torch.full((4,), 0.7))
    assert CrossStitchUnit(1, keep=0.7).alpha.item() == 1.0


def test_identity_units_keep_the_task_columns_apart(shop):
    schema, layout, data = shop
    raw = {"name": "cross_stitch", "embedding_dim": 4, "tower_dims": [8], "cross_stitch": {"column_dims": [8, 8], "keep": 1.0}}
    model = build_model(ExperimentConfig.model_validate({"model": raw}).model, layout, schema.tasks)
    model(data.take(slice(0, 128)))["click"].sum().backward()
    click = [t.name for t in model.tasks].index("click")
    for columns in model.layers:
        for i, column in enumerate(columns):
            reached = column.weight.grad is not None and column.weight.grad.abs().sum() > 0
            assert reached == (i == click)
    assert all(u.rows[click].grad.abs().sum() > 0 for u in model.units)  # the units themselves still learn


def test_weights_saved_with_one_alpha_tensor_still_load(shop):
    """Run directories written before each row of alpha became a parameter of its own."""
    schema, layout, data = shop
    raw = {"name": "cross_stitch", "embedding_dim": 4, "tower_dims": [8], "cross_stitch": {"column_dims": [8, 8]}}
    cfg = ExperimentConfig.model_validate({"model": raw}).model
    torch.manual_seed(0)
    trained = build_model(cfg, layout, schema.tasks)
    with torch.no_grad():
        for unit in trained.units:
            for row in unit.rows:
                row.add_(torch.randn(row.shape))
    old = {k: v for k, v in trained.state_dict().items() if ".rows." not in k}
    old.update({f"units.{i}.alpha": unit.alpha.detach().clone() for i, unit in enumerate(trained.units)})
    fresh = build_model(cfg, layout, schema.tasks)
    fresh.load_state_dict(old)
    batch = data.take(slice(0, 64))
    trained.eval(), fresh.eval()
    assert all(torch.equal(a, b) for a, b in zip(trained(batch).values(), fresh(batch).values()))
