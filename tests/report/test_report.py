"""`mtlrec report` on real tiny runs and a compare directory: which sections each gets (and the line
that says why one is absent), a self-contained file, the atomic write, the report at the end of
`train` (and not with --no-report), and the recorded diagnostics against the run's own metrics."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil

import pytest
import yaml

from mtlrec.artifacts import DIAGNOSTICS, REPORT
from mtlrec.cli.main import main
from mtlrec.compare import BASELINE, read_csv, summarize, write_csv
from mtlrec.data.readers import write_table
from mtlrec.data.synthetic import simulate
from mtlrec.errors import RunError
from mtlrec.report import write_report
from mtlrec.spec import TaskSpec

RUN_SECTIONS = ["metrics", "curves", "weights", "conflict", "experts", "calibration", "residuals", "frontier"]


def cli(capsys, *args):
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_close(got, want, path="") -> None:
    """Nested dicts and lists equal, numbers to 1e-9 relative."""
    assert type(got) is type(want) or {type(got), type(want)} <= {int, float}, path
    if isinstance(want, dict):
        assert got.keys() == want.keys(), path
        for k in want:
            assert_close(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{path}[{i}]")
    elif isinstance(want, (int, float)):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), path
    else:
        assert got == want, path


def sections(html: str) -> list[str]:
    return re.findall(r'<section id="(\w+)">', html)


def figures(html: str) -> list[str]:
    return re.findall(r'<figure data-figure="(\w+)">', html)


def absent(html: str) -> str:
    """The "Not in this report" box's text ('' without one)."""
    found = re.search(r'<div class="absent".*?</div>', html, re.S)
    return found.group(0) if found else ""


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory, tiny_config_shared):
    """An MMoE run with uncertainty weighting, trained by `mtlrec train` (which writes its report)."""
    raw = json.loads(json.dumps(tiny_config_shared))
    raw["data"]["synthetic"]["rows"] = 3000
    raw["model"] = {"name": "mmoe", "embedding_dim": 8, "tower_dims": [16], "mmoe": {"n_experts": 3, "expert_dims": [16]}}
    raw["weighting"] = {"name": "uncertainty"}
    root = tmp_path_factory.mktemp("gated")
    config = root / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = root / "run"
    assert main(["train", str(config), "--out", str(out)]) == 0
    return config, out


def test_train_writes_the_report_of_a_gated_run_with_every_section_but_the_frontier(gated_run):
    _, run = gated_run
    html = (run / REPORT).read_text()
    assert sections(html) == [s for s in RUN_SECTIONS if s != "frontier"]
    assert figures(html) == ["curves", "weights", "conflict", "experts", "calibration", "residuals"]
    box = absent(html)
    assert "Fusion frontier" in box and "<code>mtlrec frontier RUN DATA</code>" in box
    assert "Calibration" not in box and "Expert utilisation" not in box
    for task in ("click", "add_to_cart", "purchase", "order_value", "user_segment", "interests"):
        assert f"<td>{task}</td>" in html  # the test metrics table has a row per task
    assert "of the oracle" in html  # simulated data: ground truth known


def test_no_report_and_resume_of_a_complete_run(gated_run, tmp_path, capsys):
    config, trained = gated_run
    run = shutil.copytree(trained, tmp_path / "run")
    (run / REPORT).unlink()
    code, out, err = cli(capsys, "train", config, "--out", run, "--resume", "--no-report")
    assert code == 0, err
    assert "nothing to resume" in err and not (run / REPORT).exists()
    code, out, _ = cli(capsys, "report", run)
    assert code == 0 and out.strip() == f"wrote {run / REPORT}"
    assert figures((run / REPORT).read_text()) == figures((trained / REPORT).read_text())


def test_a_static_ungated_run_says_what_it_lacks(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    html = write_report(run).read_text()
    assert sections(html) == ["metrics", "curves", "weights", "conflict", "calibration", "residuals"]
    assert figures(html) == ["curves", "conflict", "calibration", "residuals"]  # static weights: a table
    assert "They stayed the same in every epoch." in html
    box = absent(html)
    assert "Expert utilisation</b>: the model (shared_bottom) has no gates" in box
    assert "Fusion frontier" in box
    assert "trained on" in html and "precision float32" in html and "processes (torchrun)" not in html


def test_an_old_run_without_diagnostics_or_conflict_still_gets_a_report(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    (run / DIAGNOSTICS).unlink()
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    (run / "history.jsonl").write_text("".join(json.dumps({k: v for k, v in h.items() if k != "conflict"}) + "\n"
                                               for h in history))  # fmt: skip
    html = write_report(run).read_text()
    assert sections(html) == ["metrics", "curves", "weights"]
    box = absent(html)
    assert box.count(f"this run has no {DIAGNOSTICS}") == 2  # calibration and residuals
    assert "<code>mtlrec report RUN --diagnose</code>" in box
    assert "Gradient conflict</b>: history.jsonl records no gradient-conflict measurement" in box


def test_diagnose_scores_an_old_runs_test_split_as_training_did(trained_run, tmp_path, capsys):
    run = shutil.copytree(trained_run, tmp_path / "run")
    recorded = json.loads((run / DIAGNOSTICS).read_text())
    (run / DIAGNOSTICS).unlink()
    code, out, err = cli(capsys, "report", run, "--diagnose")
    assert code == 0, err
    assert out.splitlines() == [f"wrote {run / DIAGNOSTICS}", f"wrote {run / REPORT}"]
    assert_close(json.loads((run / DIAGNOSTICS).read_text()), recorded)
    assert figures((run / REPORT).read_text())[-2:] == ["calibration", "residuals"]
    assert not (run / ".lock").exists()


def test_the_frontier_section_after_mtlrec_frontier(trained_run, tmp_path, capsys):
    run = shutil.copytree(trained_run, tmp_path / "run")
    logs = tmp_path / "logs.parquet"
    write_table(simulate(rows=2000, users=40, items=300, seed=2), logs)
    code, _, err = cli(capsys, "frontier", run, logs, "--group", "user_id", "--trials", 6)
    assert code == 0, err
    html = write_report(run).read_text()
    assert sections(html)[-1] == "frontier" and figures(html)[-1] == "frontier"
    fusion = json.loads((run / "fusion.json").read_text())
    for key, objective in fusion["objectives"].items():
        assert f"<td>{key}</td><td class=\"num\">{objective['value']:.4f}</td>" in html
    assert "Fusion frontier" not in absent(html)


def test_the_report_is_self_contained(gated_run):
    html = (gated_run[1] / REPORT).read_text()
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert not re.search(r"https?:|//[a-z]|url\(", text, re.I)  # no network reference of any kind
    assert "<script" not in html and "<link" not in html and "@import" not in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == len(figures(html))
    from PIL import Image

    for src in sources:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.verify()
        assert image.size[0] > 300 and image.size[1] > 150


def test_the_diagnostics_agree_with_the_runs_metrics(gated_run):
    """Recorded at the end of training from the test predictions: the bins' counts and means give
    back the calibration metric (mean prediction / positive rate) that metrics.json holds."""
    run = gated_run[1]
    diag = json.loads((run / DIAGNOSTICS).read_text())["test"]
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    assert {t: d["kind"] for t, d in diag.items()} == {
        "click": "binary", "add_to_cart": "binary", "purchase": "binary", "order_value": "regression"}  # fmt: skip
    for task in ("click", "add_to_cart", "purchase"):
        r = diag[task]["reliability"]
        n = sum(r["count"])
        mean_p = sum(c * p for c, p in zip(r["count"], r["predicted"])) / n
        rate = sum(c * o for c, o in zip(r["count"], r["observed"])) / n
        assert mean_p / rate == pytest.approx(metrics[task]["calibration"], rel=1e-9)
    assert sum(diag["add_to_cart"]["reliability"]["count"]) < sum(diag["click"]["reliability"]["count"])  # where: click
    b = diag["order_value"]["residuals"]["by_prediction"]
    h = diag["order_value"]["residuals"]["histogram"]
    assert sum(h["counts"]) + h["below"] + h["above"] == sum(b["count"])


def test_the_report_is_written_atomically(trained_run, tmp_path, monkeypatch):
    import pathlib

    run = shutil.copytree(trained_run, tmp_path / "run")
    before = write_report(run).read_bytes()
    real = pathlib.Path.write_text

    def half_then_fail(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_text", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_report(run)
    monkeypatch.undo()
    assert (run / REPORT).read_bytes() == before
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_report_of_a_compare_directory_marks_negative_transfer(tmp_path, capsys):
    tasks = [TaskSpec("click", "binary"), TaskSpec("value", "regression")]
    results = {
        BASELINE: [{"test": {"click": {"auc": a}, "value": {"rmse": r}}} for a, r in ((0.70, 10.0), (0.72, 10.0))],
        ("mmoe", "static"): [{"test": {"click": {"auc": a}, "value": {"rmse": r}}} for a, r in ((0.75, 12.0), (0.76, 13.0))],
    }  # fmt: skip
    cells = summarize(tasks, results, {"binary": "auc", "regression": "rmse"})
    out = tmp_path / "cmp"
    write_csv(out / "compare.csv", cells)
    assert read_csv(out / "compare.csv") == cells
    code, stdout, err = cli(capsys, "report", out)
    assert code == 0, err
    html = (out / REPORT).read_text()
    assert sections(html) == ["table", "lift"] and figures(html) == ["lift"]
    nt = re.findall(r'<td class="nt">([^<]*)</td>', html)
    assert nt == ["12.5000 ± 0.7071 (-25.00% NT)"]  # rmse 12.5 vs 10: worse by 2.5 > 0.71 + 0
    assert '<td class="num">0.7550 ± 0.0071 (+6.34%)</td>' in html  # 0.045 / 0.71


def test_errors_name_the_path(tmp_path, capsys):
    code, _, err = cli(capsys, "report", tmp_path / "nothing")
    assert code == 2 and "nothing" in err and "not a run directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli(capsys, "report", tmp_path / "empty")
    assert code == 2 and "neither a run directory (run.json) nor a compare directory (compare.csv)" in err
    bad = tmp_path / "cmp"
    bad.mkdir()
    (bad / "compare.csv").write_text("model,weighting\nmmoe,static\n")
    with pytest.raises(RunError, match=r"compare.csv line 2: not a row of mtlrec compare's table"):
        write_report(bad)


def test_a_failing_report_does_not_fail_the_finished_run(gated_run, tmp_path, capsys, monkeypatch):
    import mtlrec.report

    config, trained = gated_run
    run = shutil.copytree(trained, tmp_path / "run")

    def broken(path, out=None):
        raise ValueError("no figure today")

    monkeypatch.setattr(mtlrec.report, "write_report", broken)
    code, out, err = cli(capsys, "train", config, "--out", run, "--resume")
    assert code == 0, err
    assert f"warning: the report could not be written (ValueError: no figure today); `mtlrec report {run}` tries again" in err
