from __future__ import annotations

from pathlib import Path

import typer

NAME = "export"
TOLERANCE = 1e-5


def run(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    fmt: str = typer.Option("onnx", "--format", help="onnx, torchscript, or both: onnx,torchscript."),
    out: Path = typer.Option(None, "--out", help="Directory for model.onnx / model.pt and export.json (default: RUN)."),
    check: int = typer.Option(256, "--check", help="Compare with PyTorch on this many random encoded rows (0: skip)."),
) -> None:
    """Export the model for other runtimes: encoded inputs in, per-task predictions out (see export.json)."""
    from mtlrec.errors import RunError
    from mtlrec.export import Scorer, export_model, max_difference
    from mtlrec.serve.predictor import Predictor

    predictor = Predictor.load(run_dir)
    out = out or run_dir
    formats = [f.strip() for f in fmt.split(",") if f.strip()]
    written = export_model(predictor.model, predictor.encoder.targets_, out, formats)
    scorer = Scorer(predictor.model, predictor.encoder.targets_)
    for name, path in written.items():
        line = f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)"
        if check > 0:
            diff = max_difference(scorer, path, name, rows=check)
            if not diff <= TOLERANCE:
                raise RunError(f"{path}: predictions differ from PyTorch's by {diff:.3g} on {check} random rows")
            line += f"; largest difference from PyTorch on {check} random rows: {diff:.1e}"
        print(line)
    print(f"wrote {out / 'export.json'} (inputs: encoded as by {run_dir / 'encoder.json'}; outputs per task)")
