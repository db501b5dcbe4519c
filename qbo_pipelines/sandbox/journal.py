"""Durability: a snapshot plus an append-only, fsync'd journal of every committed change.

Real QBO never forgets a write it answered 200 for, so neither does the sandbox when it has a
data directory: after every call that may have changed state (and before its answer leaves),
the runtime calls ``commit()``, which diffs the live state against a shadow of what is already
durable and appends the difference as one JSON line, then fsyncs. On start the snapshot is
loaded, the journal replayed (a torn last line, never acknowledged, is dropped), and a fresh
snapshot replaces both (compaction). Everything in ``Store`` is covered: companies (entities,
indexes, the requestid replay memory), apps, grants and tokens, sent emails, the clock offset.

The diff relies on the store's contract that stored entity objects (and other values two
levels below a company field) are replaced, never mutated in place; containers above them are
compared key by key, so the cost of a commit is one pass over the keys, not a serialisation.
"""

from __future__ import annotations

import json
import os
from itertools import compress, islice
from operator import is_not
from pathlib import Path
from typing import IO, Any

from qbo_pipelines.sandbox.state import Obj, Store, fsync_dir, write_durably

Op = list[Any]  # ["s", path, value] (set) or ["d", path] (delete)
_MISSING = object()
_LEAF_TABLE_DEPTH = 4
"""companies/<realm>/<field>/<key>: the tables whose values are leaves (objects by id...)."""


def _is_container(path: list[str], value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    if not path:
        return True
    # companies/<realm>/<field>/<key>/<leaf>; apps|grants|tokens/<key>/<leaf>
    return len(path) < (5 if path[0] == "companies" else 2)


def _copy(path: list[str], value: Any) -> Any:
    if _is_container(path, value):
        return {k: _copy([*path, k], v) for k, v in value.items()}
    return list(value) if isinstance(value, list) else value


def _moved_leaves(shadow: dict[str, Any], current: dict[str, Any]) -> list[str] | None:
    """The keys of a table of leaves (entity objects by id...) whose value may have changed,
    found without a Python step per key: when the table only replaced values and appended
    keys since the shadow (the usual write), its first keys are the shadow's in the same order,
    and the values are compared by identity in C. None when keys were removed or reordered."""
    old_keys = list(shadow)
    keys = list(current)
    n = len(old_keys)
    if len(keys) < n or keys[:n] != old_keys:
        return None
    replaced = compress(old_keys, map(is_not, islice(current.values(), n), shadow.values()))
    return [*replaced, *keys[n:]]


def diff(shadow: dict[str, Any], current: dict[str, Any], path: list[str],
         ops: list[Op]) -> None:
    """Append to ``ops`` what turns ``shadow`` into ``current``; update ``shadow`` likewise.

    A table whose values are leaves is compared in C first (:func:`_moved_leaves`), so a
    commit costs a pass in C over a big company's tables, not a Python step per object."""
    if len(path) == _LEAF_TABLE_DEPTH and path[0] == "companies":
        moved = _moved_leaves(shadow, current)
        if moved is not None:
            for key in moved:
                value, old = current[key], shadow.get(key, _MISSING)
                if old is _MISSING or not (old is value or old == value):
                    ops.append(["s", [*path, key], value])
                    shadow[key] = _copy([*path, key], value)
            return
    for key, value in current.items():
        sub = [*path, key]
        old = shadow.get(key, _MISSING)
        if _is_container(sub, value):
            if isinstance(old, dict):
                diff(old, value, sub, ops)
                continue
        elif old is not _MISSING and (old is value or old == value):
            continue
        ops.append(["s", sub, value])
        shadow[key] = _copy(sub, value)
    for key in [k for k in shadow if k not in current]:
        ops.append(["d", [*path, key]])
        del shadow[key]


def apply(tree: dict[str, Any], op: Op) -> None:
    path = op[1]
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
    if op[0] == "s":
        node[path[-1]] = op[2]
    else:
        node.pop(path[-1], None)


class Journal:
    """``snapshot`` (JSON state) + ``log`` (JSON lines of ops), both under the data dir."""

    def __init__(self, snapshot: Path, log: Path) -> None:
        self.snapshot = snapshot
        self.log = log
        self._shadow: dict[str, Any] = {}
        self._handle: IO[bytes] | None = None

    def recover(self) -> Obj | None:
        """The durable state (snapshot + replayed journal), or None if there is none."""
        tree: Obj | None = None
        if self.snapshot.exists():
            tree = json.loads(self.snapshot.read_text(encoding="utf-8"))
        if self.log.exists():
            lines = self.log.read_bytes().split(b"\n")
            for n, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    ops = json.loads(line)
                except json.JSONDecodeError:
                    if n == len(lines) - 1:
                        break  # torn final write: it was never acknowledged
                    raise
                if tree is None:
                    tree = {}
                for op in ops:
                    apply(tree, op)
        return tree

    def checkpoint(self, store: Store) -> None:
        """Write a full snapshot and start an empty journal (also the start-up compaction)."""
        with store.lock:
            self.close()
            self.snapshot.parent.mkdir(parents=True, exist_ok=True)
            write_durably(self.snapshot, json.dumps(store.to_json()).encode("utf-8"))
            self._handle = os.fdopen(  # kept open; closed in close(). 0600: tokens inside
                os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
            os.fsync(self._handle.fileno())
            fsync_dir(self.log.parent)
            self._shadow = _copy([], store.view())

    def commit(self, store: Store) -> bool:
        """Make every change since the last commit durable. True if there was one."""
        with store.lock:
            if self._handle is None:
                return False
            ops: list[Op] = []
            diff(self._shadow, store.view(), [], ops)
            if not ops:
                return False
            self._handle.write(json.dumps(ops, separators=(",", ":")).encode("utf-8") + b"\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
            return True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
