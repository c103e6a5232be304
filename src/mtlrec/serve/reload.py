"""Hot reload: the service switches to another run directory (today's run of the same schema)
without a failed or mixed request.

``Serving`` holds the Service being served. A reload loads the new run whole (``Predictor.load``,
which never returns a half-written run or a mix of two), builds its Service (and backend) beside the
old one, checks that it takes the same requests and answers the same outputs, then replaces the
reference in one assignment. A request reads the reference once, at its start, and uses that
Service to its end: in-flight requests finish on the old model, later ones get the new one. A reload
that fails leaves the old Service serving and says why.

``Watcher`` polls a path (a run directory, or a symlink to one) and reloads when it points to
another run or its run.json has another id (a run directory is complete exactly when it has
run.json, so a run being written is never loaded).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from mtlrec.artifacts import RUN_JSON
from mtlrec.errors import MtlrecError, RunError
from mtlrec.serve.service import Service

logger = logging.getLogger("mtlrec.serve")


class ReloadBusy(RunError):
    """Another reload is running."""


class OutsideRoot(RunError):
    """A run path that does not lie under the runs root."""


def request_difference(old: Service, new: Service, new_name: str) -> str | None:
    """What differs between the requests the two services take and the outputs they answer
    (None when nothing does): a reload keeps the request schema and the outputs."""
    a, b = old.request_fields, new.request_fields
    added, removed = [c for c in b if c not in a], [c for c in a if c not in b]
    if added or removed:
        parts = [f"adds {', '.join(map(repr, added))}" if added else "",
                 f"lacks {', '.join(map(repr, removed))}" if removed else ""]  # fmt: skip
        return f"the request fields differ: {new_name} {' and '.join(p for p in parts if p)}"
    for column, kind in a.items():
        if b[column] != kind:
            return f"request field '{column}' is {kind} in the serving run, {b[column]} in {new_name}"
    outputs = {t.name: (t.kind, t.out_dim) for t in old.predictor.tasks}
    new_outputs = {t.name: (t.kind, t.out_dim) for t in new.predictor.tasks}
    if list(outputs) != list(new_outputs):
        return f"the outputs differ: the serving run answers {list(outputs)}, {new_name} {list(new_outputs)}"
    for name, (kind, width) in outputs.items():
        if new_outputs[name] != (kind, width):
            return (f"output '{name}' is {kind} with {width} value(s) in the serving run, "
                    f"{new_outputs[name][0]} with {new_outputs[name][1]} in {new_name}")  # fmt: skip
    changed = next((name for name, names in old.classes.items() if new.classes[name] != names), None)
    if changed is not None:  # the same width, other classes: a client would read them wrongly
        return (f"the classes of output '{changed}' differ: {old.classes[changed]} in the serving run, "
                f"{new.classes[changed]} in {new_name}")
    return None


def run_key(path: Path) -> tuple[Path, str] | None:
    """(the directory ``path`` resolves to, its run.json id), or None while it has no complete run.json."""
    import json

    try:
        target = path.resolve(strict=True)
        info = json.loads((target / RUN_JSON).read_text())
        return target, str(info["id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Serving:
    """The Service being served (``service``, replaced whole by ``reload``, never changed in place)
    and how to load another: ``load(run_dir) -> Service``. ``runs_root``: the only directory under
    which ``resolve`` finds runs to reload (None: reloads by path are refused)."""

    def __init__(self, service: Service, load: Callable[[Path], Service], runs_root: Path | None = None) -> None:
        self.service = service
        self.load = load
        self.runs_root = runs_root.resolve() if runs_root is not None else None
        self.since = time.time()
        self.reloads = 0
        self.last_error: dict[str, Any] | None = None
        self.stopping = False
        self._lock = threading.Lock()

    def resolve(self, run: str) -> Path:
        """``run`` (relative to the runs root, or absolute) as a real path under the runs root."""
        if self.runs_root is None:
            raise OutsideRoot("reloading by path is off: start the service with --runs-root DIR")
        try:
            path = (self.runs_root / run).resolve()
        except (OSError, ValueError) as err:
            raise RunError(f"run '{run}': not a usable path ({err})") from None
        if not path.is_relative_to(self.runs_root):
            raise OutsideRoot(f"run '{run}': not under the runs root {self.runs_root}")
        return path

    def reload(self, run_dir: Path) -> dict[str, Any]:
        """Load ``run_dir`` and serve it if it takes the same requests; returns what was served
        before and what is now. RunError (nothing changed) when it cannot be loaded or differs;
        ReloadBusy when another reload is running."""
        if not self._lock.acquire(blocking=False):
            raise ReloadBusy("another reload is running; try again when it ends")
        try:
            start = time.perf_counter()
            old = self.service
            try:
                new = self.load(run_dir)
                difference = request_difference(old, new, str(run_dir))
                if difference:
                    raise RunError(f"{run_dir}: not the request schema of the serving run: {difference}")
            except Exception as err:
                message = str(err)
                if not isinstance(err, MtlrecError):  # a bug, not the run's fault: the log keeps the traceback
                    logger.exception("reload of %s failed", run_dir)
                    message = f"{run_dir}: could not be loaded ({type(err).__name__}: {err})"
                self.last_error = {"run": str(run_dir), "error": message, "at": round(time.time(), 3)}
                logger.warning("reload of %s failed, still serving %s: %s", run_dir, old.run["path"], message)
                raise RunError(message) from None
            self.service = new  # the swap: one reference, read once by each request
            self.since, self.reloads, self.last_error = time.time(), self.reloads + 1, None
            seconds = round(time.perf_counter() - start, 3)
            logger.info("reloaded: now serving %s (run %s), before %s (run %s); %.1f s",
                        new.run["path"], new.run["id"], old.run["path"], old.run["id"], seconds)  # fmt: skip
            return {"status": "reloaded", "run": new.run, "previous": old.run, "seconds": seconds}
        finally:
            self._lock.release()

    def status(self) -> dict[str, Any]:
        """What /v1/model says about the run served and the reloads."""
        return {**self.service.run, "since": round(self.since, 3), "reloads": self.reloads,
                "last_reload_error": self.last_error}  # fmt: skip


def point(link: Path, target: Path) -> None:
    """Make the symlink ``link`` point to ``target`` in one rename (a reader sees the old target or
    the new one)."""
    import os
    import uuid

    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:12]}")
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)


class Watcher:
    """Polls ``path`` every ``interval`` seconds in a daemon thread and reloads ``serving`` when it
    resolves to another run or its run.json changes id. A failed reload is not retried until the
    path changes again."""

    def __init__(self, serving: Serving, path: Path, interval: float = 1.0) -> None:
        self.serving, self.path, self.interval = serving, path, interval
        served = serving.service.predictor
        self.seen = (served.run_dir.resolve(), str(served.run_info.get("id"))) if served.run_dir else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="mtlrec-watch", daemon=True)

    def start(self) -> "Watcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def check(self) -> None:
        """One poll: reload if the path shows another complete run than the last one seen, unless
        that run is the one served already."""
        key = run_key(self.path)
        if key is None or key == self.seen:
            return
        served = self.serving.service.predictor
        if served.run_dir is not None and key == (served.run_dir.resolve(), str(served.run_info.get("id"))):
            self.seen = key
            return
        try:
            self.serving.reload(key[0])
        except ReloadBusy:
            return  # the next poll tries again
        except RunError:
            pass  # logged and kept in serving.last_error; tried again when the path changes
        self.seen = key

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the watcher die silently: log and keep polling
                logger.exception("watching %s failed", self.path)
