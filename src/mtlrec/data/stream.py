"""Data larger than memory: the train, valid and test rows of a set of Parquet/CSV files, read a
piece at a time (data/pieces.py), so that memory depends on the shuffle buffer, the batch and the
vocabularies, never on the number of rows.

**Splits without materialising.** Each row's split comes from the row itself (``Splitter``): the
hash of a column (``data.split.method: hash`` or ``user``: a user, request or row id), the hash of
its file and row number (``random``), its time against thresholds (``time`` with
``valid_from``/``test_from``), or its file (``data.valid_path``, ``data.test_path``). The
same rows land in the same split on every run and machine.

**One pass** (``scan``) counts each piece's rows per split and each binary task's classes per split,
and fits the encoder on the train rows (``EncoderFit``), or grows a parent's.

**Shuffling** (``StreamData.batches(shuffle=True)``): each epoch draws an order of the pieces from
the shuffle generator, and the split's rows, in that order, are cut into windows of
``data.shuffle_buffer`` rows (a multiple of the batch size); each window is encoded, permuted with
the generator and served as batches. The windows are read and encoded by a background thread one
window ahead of training where a core is free (``StreamData._threaded``). A resumed epoch (``start``: batches already done) replays the draws of
the windows it skips and reads from the first piece it needs: the piece counts say where every
window begins, without reading what comes before.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import torch

from mtlrec.config import DataConfig
from mtlrec.data.batches import EncodedData, TensorBatch
from mtlrec.data.columns import RowOrigin, as_binary
from mtlrec.data.encode import Encoder
from mtlrec.data.fitting import EncoderFit
from mtlrec.data.hashing import split_codes, splitmix64, stable_hash
from mtlrec.data.pieces import Piece, find_files, is_pattern, pieces_of, read_piece
from mtlrec.data.split import time_codes
from mtlrec.distributed import SINGLE, Shard, World
from mtlrec.errors import ConfigError, DataError
from mtlrec.spec import Schema

SPLITS = ("train", "valid", "test")
Reader = Callable[[Piece, Sequence[str]], Iterator[tuple[pa.Table, int]]]  # read_piece, or it with side tables


class Splitter:
    """Which split each row of a piece belongs to: [N] int8, 0 train, 1 valid, 2 test. The files
    of ``data.valid_path`` and ``data.test_path`` go whole to their split; the other files' rows are
    split by ``data.split``, a row it sends to a split that files give going to train."""

    def __init__(self, cfg: DataConfig) -> None:
        self.split = cfg.split
        self.by_file: dict[Path, int] = {}
        for code, path in ((1, cfg.valid_path), (2, cfg.test_path)):
            for f in find_files(path) if path else ():
                self.by_file[f.absolute()] = code
        self.given = [code for code, path in ((1, cfg.valid_path), (2, cfg.test_path)) if path]
        by_rows = len(self.given) < 2  # a split that comes from the rows themselves
        method = self.split.method
        if by_rows and method == "time" and not self.split.thresholds:
            raise ConfigError(
                "data.split.method: time by fractions needs the whole table sorted, which a stream is not; "
                "split a stream by time with thresholds (data.split.valid_from, data.split.test_from), by "
                "the hash of a column (method: hash, column: request_id), or by files (data.valid_path, "
                "data.test_path)"
            )
        self.column = self.split.column if by_rows and method in ("hash", "user", "time") else None

    @property
    def columns(self) -> list[str]:
        return [self.column] if self.column else []

    def codes(self, table: pa.Table, piece: Piece, first: int) -> np.ndarray:
        fixed = self.by_file.get(piece.path.absolute(), 0 if len(self.given) == 2 else None)
        if fixed is not None:
            return np.full(table.num_rows, fixed, dtype=np.int8)
        codes = self._by_rows(table, piece, first)
        if self.given:
            codes[np.isin(codes, self.given)] = 0
        return codes

    def _by_rows(self, table: pa.Table, piece: Piece, first: int) -> np.ndarray:
        if self.column and self.split.method == "time":
            rows = RowOrigin(piece.name, np.arange(first, first + table.num_rows))
            return time_codes(table[self.column], self.split, rows)
        if self.column:
            keys = stable_hash(table[self.column], self.column, piece.name)
        else:  # random: the row's file and its number there
            rows = np.arange(first, first + table.num_rows, dtype=np.int64)
            keys = splitmix64(rows ^ stable_hash(pa.array([piece.name])).view(np.int64)[0])
        return split_codes(keys, self.split.valid, self.split.test, self.split.seed)


@dataclass
class Scan:
    """What one pass over the pieces found: rows per piece and split [P, 3], and per split each
    binary task's (rows in its sample space, positives)."""

    counts: np.ndarray
    classes: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)


def scan(
    pieces: Sequence[Piece], splitter: Splitter, schema: Schema, fit: EncoderFit | None, columns: Sequence[str],
    read: Reader = read_piece, shard: Shard = Shard(),
) -> Scan:  # fmt: skip
    """One pass: count the rows of each split, and fit ``fit`` (if any) on the train rows. With a
    ``shard`` of several processes, over this one's pieces only (every ``size``-th)."""
    counts = np.zeros((len(pieces), 3), dtype=np.int64)
    classes = {s: {t.name: (0, 0) for t in schema.tasks if t.kind == "binary"} for s in SPLITS}
    for i in range(shard.rank, len(pieces), shard.size):
        piece = pieces[i]
        for table, first in read(piece, columns):
            codes = splitter.codes(table, piece, first)
            counts[i] += np.bincount(codes, minlength=3)
            origin = RowOrigin(piece.name, np.arange(first, first + table.num_rows))
            for code, split in enumerate(SPLITS):
                rows = codes == code
                if not rows.any():
                    continue
                part, where = table.filter(pa.array(rows)), origin.take(rows)
                if fit is not None and code == 0:
                    fit.update(part, where)
                _count_classes(classes[split], part, schema, where)
    return Scan(counts, classes)


def _count_classes(acc: dict[str, tuple[int, int]], table: pa.Table, schema: Schema, where: RowOrigin) -> None:
    for t in schema.tasks:
        if t.kind != "binary" or t.source not in table.column_names:
            continue
        mask = as_binary(table[t.where], t.where, where).astype(bool) if t.where else np.ones(table.num_rows, bool)
        y = as_binary(table[t.source], t.source, where, mask)
        n, pos = acc[t.name]
        acc[t.name] = (n + int(mask.sum()), pos + int(y[mask].sum()))


class StreamData:
    """One split of a stream, with the interface of EncodedData that training and evaluation use:
    ``len``, ``batches`` and ``class_counts``; ``chunks`` for evaluation."""

    def __init__(
        self, pieces: Sequence[Piece], counts: np.ndarray, split: str, splitter: Splitter, encoder: Encoder,
        columns: Sequence[str], classes: dict[str, tuple[int, int]], buffer: int, prefetch: bool | None = None,
        read: Reader = read_piece,
    ) -> None:  # fmt: skip
        self.pieces, self.counts = list(pieces), np.asarray(counts)  # counts: [P] this split's rows per piece
        self.code, self.splitter, self.encoder = SPLITS.index(split), splitter, encoder
        self.columns, self.classes, self.buffer, self.prefetch = list(columns), classes, buffer, prefetch
        self.targets = dict(encoder.targets_)
        self.read = read

    def __len__(self) -> int:
        return int(self.counts.sum())

    def class_counts(self, task: str) -> tuple[int, int]:
        return self.classes.get(task, (0, 0))

    # -- reading -----------------------------------------------------------------------------
    def chunks(
        self, order: Sequence[int] | None = None, skip: int = 0, shard: Shard = Shard()
    ) -> Iterator[tuple[EncodedData, pa.Table]]:
        """The split's rows, piece by piece in ``order`` (default: as listed), the first ``skip``
        rows left out (whole pieces unread): (encoded rows, the raw table they came from). A split
        without rows gives one empty chunk. With a ``shard`` of several processes, only this
        one's rows (positions in that sequence, the skipped ones counted) are encoded."""
        if not len(self):
            yield self._empty()
            return
        position = skip  # of the next row in the sequence
        for i in range(len(self.pieces)) if order is None else order:
            if skip >= self.counts[i]:
                skip -= int(self.counts[i])
                continue
            piece = self.pieces[i]
            for table, first in self.read(piece, self.columns):
                rows = self.splitter.codes(table, piece, first) == self.code
                index = np.flatnonzero(rows)[skip:]
                skip = max(skip - int(rows.sum()), 0)
                if shard.size > 1:
                    mine = (position + np.arange(len(index))) % shard.size == shard.rank
                    position += len(index)
                    index = index[mine]
                if not len(index):
                    continue
                part = table.take(pa.array(index))
                where = RowOrigin(piece.name, index + first)
                yield self.encoder.transform(part, where=where), part

    def _empty(self) -> tuple[EncodedData, pa.Table]:
        """No rows, with the columns of the split's (encoded, raw)."""
        table, _ = next(self.read(self.pieces[0], self.columns))
        return self.encoder.transform(table.slice(0, 0), where=self.pieces[0].name), table.slice(0, 0)

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None, start: int = 0,
        shard: Shard = Shard(),
    ) -> Iterator[TensorBatch]:  # fmt: skip
        """As ``EncodedData.batches``; with ``shuffle``, from windows of the shuffle buffer read and
        encoded one window ahead (module docstring). With a ``shard`` of several processes, each
        reads every piece but encodes and serves only its rows of each batch (distributed.py)."""
        if not shuffle:
            for data, _ in self.chunks(skip=start * batch_size):
                yield from data.batches(batch_size, shard=shard)
            return
        own = torch.Generator()  # the windows draw from their own copy: no two threads on one generator
        own.set_state(generator.get_state() if generator is not None else torch.Generator().get_state())
        windows = self._windows(batch_size, own, start, shard)
        for window, perm, first, at in _prefetched(lambda: windows) if self._threaded() else windows:
            for b in range(first, len(perm), batch_size):
                yield window.take(shard.local(perm[b : b + batch_size] + at, at))
        if generator is not None:
            generator.set_state(own.get_state())  # after the epoch, as an uninterrupted one leaves it

    def _threaded(self) -> bool:
        """Read ahead in a background thread (``data.prefetch``; None: when the machine has a core
        that torch's threads leave free: on two cores with two torch threads the reading thread
        stalls torch's parallel regions, measured 20-25 % slower than reading in turn)."""
        if self.prefetch is not None:
            return self.prefetch
        return (os.cpu_count() or 1) > torch.get_num_threads()

    def _windows(self, batch_size: int, generator: torch.Generator, start: int, shard: Shard) -> Iterator[tuple]:
        """(window: this process's rows of it, the permutation of all its rows, the offset of its
        first batch to serve, the position of its first row) for each window left."""
        size = -(-self.buffer // batch_size) * batch_size
        total = len(self)
        order = torch.randperm(len(self.pieces), generator=generator).tolist()
        done = start * batch_size
        first_window = done // size
        for w in range(first_window):  # the draws of the windows a resumed epoch has done
            torch.randperm(min(size, total - w * size), generator=generator)
        rows = _Rows(self.chunks(order, skip=first_window * size, shard=shard), lambda: self._empty()[0])
        for w in range(first_window, -(-total // size)):
            n, at = min(size, total - w * size), w * size
            window = rows.take(shard.count(at, at + n))
            yield window, torch.randperm(n, generator=generator), done - at if w == first_window else 0, at


class _Rows:
    """Takes exactly n rows at a time from a stream of encoded chunks."""

    def __init__(self, chunks: Iterator[tuple[EncodedData, pa.Table]], empty: Callable[[], EncodedData]) -> None:
        self.chunks, self.left, self.empty = chunks, None, empty

    def take(self, n: int) -> EncodedData:
        if n == 0:  # a process's share of a window smaller than the world: no rows, the columns kept
            return self.empty()
        parts, have = [], 0
        while have < n:
            data = self.left if self.left is not None else next(self.chunks)[0]
            need = n - have
            if len(data) > need:
                self.left = data.rows(slice(need, None))
                data = data.rows(slice(0, need))
            else:
                self.left = None
            parts.append(data)
            have += len(data)
        return EncodedData.concat(parts)


def _prefetched(produce: Callable[[], Iterator], ahead: int = 1) -> Iterator:
    """``produce()``'s items, made by a background thread ``ahead`` items in advance. An error in the
    thread is raised here; stopping early stops the thread."""
    items: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()
    end = object()

    def work() -> None:
        try:
            for item in produce():
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(("end", end))
        except BaseException as err:  # noqa: BLE001  (handed to the consumer)
            items.put(("error", err))

    thread = threading.Thread(target=work, name="mtlrec-stream", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = items.get()
            if kind == "error":
                raise item
            if kind == "end":
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def is_stream(path: str | Path) -> bool:
    """A directory or a glob: files read piece by piece."""
    return is_pattern(str(path)) or Path(path).is_dir()


def streams(cfg: DataConfig) -> bool:
    """Whether ``cfg`` names data to stream: a directory or glob of files (or one file with
    ``data.stream: true``), from ``data.source: file``."""
    if cfg.source != "file" or not cfg.path:
        return False
    return cfg.stream if cfg.stream is not None else is_stream(cfg.path)


def open_splits(
    cfg: DataConfig, schema: Schema, *, encoder: Encoder | None = None, grow: Encoder | None = None,
    extra: Sequence[str] = (), read: Reader = read_piece, world: World = SINGLE,
) -> tuple[Encoder, dict[str, StreamData]]:  # fmt: skip
    """The streamed train/valid/test splits of ``cfg`` and their encoder: ``encoder`` as it is, or
    fitted in the same pass that counts the splits (grown from ``grow`` for a warm start).
    ``extra``: more columns to read where the files have them (e.g. the oracle_* ones). ``read``:
    how a piece is read (side tables joined on: data/join.py). Several processes (``world``) share
    the pass: each reads every N-th piece; rank 0 merges the fits in rank order (``_merged``)."""
    splitter = Splitter(cfg)
    files = {f.absolute(): f for f in find_files(cfg.path)}
    files.update({f: f for f in splitter.by_file})
    pieces = pieces_of(sorted(files.values()))
    columns = list(dict.fromkeys([*schema.columns(), *([schema.group] if schema.group else []), *splitter.columns,
                                  *extra]))  # fmt: skip
    fit = EncoderFit(schema, start=grow) if encoder is None else None
    found = scan(pieces, splitter, schema, fit, columns if fit else [*schema.columns(), *splitter.columns], read,
                 world.shard)  # fmt: skip
    if world.size > 1:
        found, fitted = _merged(found, fit, world, schema, grow)
    else:
        fitted = fit.finish() if fit is not None else None
    encoder = encoder or fitted
    _check_sizes(cfg, found.counts.sum(0))
    return encoder, {
        split: StreamData(pieces, found.counts[:, i], split, splitter, encoder, columns, found.classes[split],
                          cfg.shuffle_buffer, cfg.prefetch, read)  # fmt: skip
        for i, split in enumerate(SPLITS)
    }


def _merged(
    found: Scan, fit: EncoderFit | None, world: World, schema: Schema, grow: Encoder | None
) -> tuple[Scan, Encoder | None]:  # fmt: skip
    """Every process's scan summed, and its fit merged in rank order on rank 0, whose encoder every
    process gets (the counts of a large vocabulary go to one process only)."""
    counts = world.sum(torch.from_numpy(found.counts)).numpy()
    keys = [(split, task) for split, tasks in found.classes.items() for task in tasks]
    classes = world.sum(torch.tensor([found.classes[s][t] for s, t in keys], dtype=torch.long).reshape(-1, 2))
    summed: dict[str, dict[str, tuple[int, int]]] = {split: {} for split in found.classes}
    for (split, task), (n, positives) in zip(keys, classes.tolist()):
        summed[split][task] = (n, positives)
    if fit is None:
        return Scan(counts, summed), None
    states = world.gather_json(fit.state())  # [] but on rank 0
    finished = None
    if world.main:
        finished = functools.reduce(EncoderFit.merge, states, EncoderFit(schema, start=grow)).finish()
    fitted = world.agree(finished.to_dict() if world.main else None)  # (rank 0 keeps its counts, for counts.json)
    return Scan(counts, summed), finished if world.main else Encoder.from_dict(fitted)


def _check_sizes(cfg: DataConfig, rows: np.ndarray) -> None:
    """Every split that should have rows has some: a DataError naming the setting otherwise."""
    by_time = cfg.split.thresholds and not (cfg.valid_path or cfg.test_path)
    wanted = {"train": True, "valid": bool(cfg.valid_path) or cfg.split.valid > 0,
              "test": bool(cfg.test_path) or cfg.split.test > 0}  # fmt: skip
    if by_time:
        wanted["valid"] = cfg.split.valid_from is not None
    for (split, want), n in zip(wanted.items(), rows):
        if want and n == 0:
            setting = {"train": "data.path", "valid": "data.valid_path or data.split.valid",
                       "test": "data.test_path or data.split.test"}[split]  # fmt: skip
            if by_time:
                setting = "data.split.valid_from and data.split.test_from"
            raise DataError(
                f"{cfg.path}: the {split} split has no rows ({int(rows.sum())} rows in all); check {setting}"
            )


class FileRows:
    """Every row of the files ``path`` names, piece by piece, encoded for a run that is already
    trained (``mtlrec evaluate`` and ``predict`` on a directory or glob): what ``score_split``
    reads through ``chunks``."""

    def __init__(
        self, path: str, encoder: Encoder, columns: Sequence[str], *, labels: bool = True, read: Reader = read_piece
    ) -> None:
        self.pieces = pieces_of(find_files(path))
        self.encoder, self.columns, self.labels, self.read = encoder, list(columns), labels, read

    @property
    def rows(self) -> int | None:
        """How many rows ``chunks`` yields in all, from the Parquet metadata (None: a CSV among the files)."""
        counts = [piece.rows for piece in self.pieces]
        return None if None in counts else sum(counts)

    def chunks(self) -> Iterator[tuple[EncodedData, pa.Table]]:
        for piece in self.pieces:
            for table, first in self.read(piece, self.columns):
                where = RowOrigin(piece.name, np.arange(first, first + table.num_rows))
                yield self.encoder.transform(table, labels=self.labels, where=where), table
