"""`mtlrec frontier` end to end on the session's tiny run: table, plot, fusion.json (read back by
load_fusion), the same result for the same seed, and one-line errors."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from mtlrec.cli.main import main
from mtlrec.data.readers import write_table
from mtlrec.data.synthetic import simulate
from mtlrec.rank.fusion import load_fusion


def cli(capsys, *args):
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """3000 impressions of 60 users (~50 each): enough candidates per user for a top 10."""
    path = tmp_path_factory.mktemp("logs") / "logs.parquet"
    write_table(simulate(rows=3000, users=60, items=300, seed=1), path)
    return path


@pytest.fixture
def run_dir(trained_run, tmp_path):
    return shutil.copytree(trained_run, tmp_path / "run")


def test_frontier_writes_table_plot_and_the_chosen_fusion(capsys, run_dir, logged, tmp_path):
    args = [run_dir, logged, "--group", "user_id", "--inputs", "click,purchase,order_value", "--trials", 12,
            "--keep", "click>=0.9"]  # fmt: skip
    code, out, err = cli(capsys, "frontier", *args)
    assert code == 0, err
    assert "| setting" in out and "chosen (maximize gmv keeping click >= 0.9 x baseline)" in out

    with open(run_dir / "frontier" / "frontier.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"setting", "role", "w_click", "w_purchase", "w_order_value", "click", "purchase", "gmv",
            "order_value_sum@10", "click_ndcg@10", "click_recall@10"} <= set(rows[0])  # fmt: skip
    roles = [r["role"] for r in rows]
    assert roles.count("chosen") == 1 and ("baseline" in roles) != (rows[roles.index("chosen")]["setting"] == "click only")
    base = next(r for r in rows if r["setting"] == "click only")
    chosen = rows[roles.index("chosen")]
    assert float(chosen["gmv"]) >= float(base["gmv"]) and float(chosen["click"]) >= 0.9 * float(base["click"])
    assert (run_dir / "frontier" / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    stored = json.loads((run_dir / "fusion.json").read_text())
    assert stored["objectives"]["gmv"]["value"] == pytest.approx(float(chosen["gmv"]))
    assert stored["group"] == "user_id" and stored["k"] == 10
    fuser = load_fusion(run_dir)
    inputs = ("click", "purchase", "order_value")
    assert {n: fuser.weights.get(n, 0.0) for n in inputs} == pytest.approx({n: float(chosen[f"w_{n}"]) for n in inputs})

    # the same seed gives the same frontier; --no-save leaves fusion.json alone
    before = (run_dir / "fusion.json").read_text()
    code, _, err = cli(capsys, "frontier", *args, "--out", tmp_path / "again", "--no-save")
    assert code == 0, err
    assert (tmp_path / "again" / "frontier.csv").read_text() == (run_dir / "frontier" / "frontier.csv").read_text()
    assert (run_dir / "fusion.json").read_text() == before


def test_frontier_errors_are_one_line(capsys, run_dir, logged):
    cases = [
        (["--keep", "click>0.9"], "--keep 'click>0.9': expected OBJECTIVE>=RATIO"),
        (["--maximize", "revenue"], "--maximize 'revenue': not an objective"),
        (["--objectives", "click:auc"], "expected NAME or NAME:METRIC"),
        (["--fuser", "expected_value"], "has no weights to search"),
        (["--group", "session"], "missing column(s) 'session'"),
        (["--inputs", "click,margin"], "input 'margin' is neither a task prediction nor a column of logs.parquet"),
        (["--keep", "click>=1.5"], "no Pareto-optimal setting meets"),
    ]
    for extra, message in cases:
        code, _, err = cli(capsys, "frontier", run_dir, logged, "--group", "user_id", "--trials", 2, *extra)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert not (run_dir / "fusion.json").exists()


def test_frontier_warns_when_every_group_fits_in_the_top_k(capsys, run_dir, logged):
    code, _, err = cli(capsys, "frontier", run_dir, logged, "--group", "request_id", "--trials", 2, "--no-save")
    assert code == 0 and "warning: no 'request_id' has more than 10 rows" in err
