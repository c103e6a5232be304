"""`mtlrec compare` and `mtlrec weightings`: the grid, the summary (mean, spread, lift, negative
transfer) on hand-made results, the written tables, and one tiny end-to-end run."""

from __future__ import annotations

import csv
import math

import pytest
import yaml

from mtlrec.cli.main import main
from mtlrec.cli.table import headline
from mtlrec.compare import BASELINE, grid, oracle_row, summarize, table
from mtlrec.spec import TaskSpec
from mtlrec.weighting import WEIGHTINGS

TASKS = [TaskSpec("click", "binary"), TaskSpec("value", "regression")]


def cli(capsys, *args):
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def runs(*pairs):
    """metrics.json contents with test click AUC and value RMSE."""
    return [{"test": {"click": {"auc": auc}, "value": {"rmse": rmse}}} for auc, rmse in pairs]


def test_grid_always_starts_with_the_baseline():
    order = grid(["shared_bottom"], ["static", "pcgrad"])
    assert order == [BASELINE, ("shared_bottom", "static"), ("shared_bottom", "pcgrad")]
    assert grid(["single_task", "mmoe"], ["famo"]) == [BASELINE, ("mmoe", "famo")]


def test_summary_mean_spread_lift_and_negative_transfer():
    results = {
        BASELINE: runs((0.70, 10.0), (0.72, 10.0), (0.71, 10.0)),  # auc 0.71 ± 0.01; rmse 10 ± 0
        ("shared_bottom", "static"): runs((0.74, 11.0), (0.75, 12.0), (0.73, 13.0)),  # auc better; rmse worse by 2 > 1
        ("shared_bottom", "pcgrad"): runs((0.69, 9.0), (0.71, 10.0), (0.70, 11.0)),  # within the spread
    }
    cells = {(c.model, c.weighting, c.task): c for c in summarize(TASKS, results, headline)}
    base = cells[(*BASELINE, "click")]
    assert base.mean == pytest.approx(0.71) and base.std == pytest.approx(0.01) and base.lift == 0
    assert not base.negative_transfer
    sb = cells[("shared_bottom", "static", "click")]
    assert sb.values == (0.74, 0.75, 0.73) and sb.lift == pytest.approx(100 * 0.03 / 0.71)
    assert not sb.negative_transfer
    sb_value = cells[("shared_bottom", "static", "value")]
    assert sb_value.lift == pytest.approx(-20.0)  # rmse: lower is better, 12 vs 10
    assert sb_value.negative_transfer  # worse by 2, spread 1 + 0
    pc = cells[("shared_bottom", "pcgrad", "click")]
    assert pc.lift < 0 and not pc.negative_transfer  # worse by 0.01, within 0.01 + 0.01
    assert not cells[("shared_bottom", "pcgrad", "value")].negative_transfer

    header, rows = table(list(cells.values()))
    assert header == ["model", "weighting", "click auc", "value rmse"]
    assert rows[0] == ["single_task", "static", "0.7100 ± 0.0100", "10.0000 ± 0.0000"]
    assert rows[1][3] == "12.0000 ± 1.0000 (-20.00% NT)"


def test_oracle_row_only_where_every_run_has_ground_truth():
    with_oracle = [{**r, "oracle": {"test": {"click": {"auc": 0.8}, "value": {"rmse": 9.5}}}} for r in runs((0.7, 10.0))]
    results = {BASELINE: with_oracle, ("shared_bottom", "static"): with_oracle}
    assert oracle_row(TASKS, results, headline) == ["oracle", "", "0.8000", "9.5000"]
    results[("shared_bottom", "pcgrad")] = runs((0.7, 10.0))  # no ground truth (a file source)
    assert oracle_row(TASKS, results, headline) is None
    partial = [{**r, "oracle": {"test": {"click": {"auc": 0.8}}}} for r in runs((0.7, 10.0))]
    assert oracle_row(TASKS, {BASELINE: partial}, headline) == ["oracle", "", "0.8000", "-"]


def test_undefined_metrics_are_not_flagged():
    results = {BASELINE: runs((0.7, 1.0)), ("shared_bottom", "static"): runs((None, 1.0))}
    cell = [c for c in summarize(TASKS, results, headline) if c.model == "shared_bottom"][0]
    assert math.isnan(cell.mean) and not cell.negative_transfer


def test_weightings_lists_every_method_with_its_cost(capsys):
    code, out, _ = cli(capsys, "weightings")
    assert code == 0
    for name in WEIGHTINGS.names():
        assert f"\n{name} " in f"\n{out}", name
    assert out.count("cost: ") == len(WEIGHTINGS.names())
    assert "T - 1 extra backward passes" in out


def test_compare_unknown_names_fail_before_training(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train: {epochs: 1}\n")
    code, _, err = cli(capsys, "compare", config, "--weightings", "static,pcgradd", "--out", tmp_path / "o")
    assert code == 2 and "pcgradd" in err and "expected one of" in err
    code, _, err = cli(capsys, "compare", config, "--models", "mmmoe", "--out", tmp_path / "o")
    assert code == 2 and "mmmoe" in err
    assert not (tmp_path / "o").exists()


def test_compare_end_to_end(capsys, tmp_path, tiny_config):
    tiny_config["data"]["synthetic"]["rows"] = 3000
    tiny_config["model"]["single_task"] = {"bottom_dims": [16]}
    tiny_config["train"]["epochs"] = 1
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config))
    out = tmp_path / "cmp"
    code, stdout, err = cli(capsys, "compare", config, "--weightings", "static,mgda", "--seeds", "2",
                            "--set", "train.progress=false", "--out", out)  # fmt: skip
    assert code == 0, err
    assert "[1/6] single_task + static, seed 0" in err and "[6/6] done" in err
    assert sorted(p.name for p in out.iterdir()) == ["compare.csv", "compare.md", "report.html", "shared_bottom-mgda",
                                                     "shared_bottom-static", "single_task-static"]  # fmt: skip
    assert f"report: {out / 'report.html'}" in stdout and '<section id="lift">' in (out / "report.html").read_text()
    assert (out / "shared_bottom-mgda" / "seed1" / "metrics.json").is_file()
    md = (out / "compare.md").read_text()
    assert md.splitlines()[0].startswith("| model ") and md.splitlines()[0] in stdout
    oracle = [line for line in md.splitlines() if line.startswith("| oracle ")]  # the simulator's ground truth
    assert len(oracle) == 1 and oracle[0] in stdout and "oracle: the simulator's ground truth" in md
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert len(rows) == 3 * 6  # 3 configurations x 6 tasks
    assert {r["n"] for r in rows} == {"2"}
    pairs = {(r["model"], r["weighting"]) for r in rows}
    assert pairs == {BASELINE, ("shared_bottom", "static"), ("shared_bottom", "mgda")}
    code, _, err = cli(capsys, "compare", config, "--seeds", "1", "--out", out)
    assert code == 2 and "--overwrite" in err
