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
    whose rows the config's ``data.synthetic`` section determines)."""
    out: dict[str, Any] = {"source": cfg.source}
    if cfg.path:
        root = Path(cfg.path)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        out["files"] = [{"path": str(p), "bytes": p.stat().st_size, "sha256": sha256(p)} for p in files if p.exists()]
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()
