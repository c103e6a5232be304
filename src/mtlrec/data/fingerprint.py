"""What data a run was trained on: each file under ``data.path`` with its size and SHA-256, so
that run.json can name its data, and a resumed run can tell that its data changed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mtlrec.config import DataConfig

CHUNK = 1 << 20


def data_fingerprint(cfg: DataConfig) -> dict[str, Any]:
    """{"source": name, "files": [{"path", "bytes", "sha256"}, ...]} (no files for the simulator,
    whose rows the config's ``data.synthetic`` section determines), and "join": the side tables'."""
    out: dict[str, Any] = {"source": cfg.source}
    if cfg.path:
        root = Path(cfg.path)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        out["files"] = [_file(p) for p in files if p.exists()]
    if cfg.join:  # side tables
        out["join"] = [_file(Path(j.path)) for j in cfg.join if Path(j.path).exists()]
    return out


def _file(path: Path) -> dict[str, Any]:
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256(path)}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()
