"""The imports found in module sources, kept by content across exports and processes.

Parsing is most of a first export's time (an ``ast.parse`` of every interned
module). What ``find_imports`` finds depends on the text alone, so it is kept
on disk under a digest of the source, and a CI run whose test processes export
the same code parses each file once. Within a process, each module's resolved
imports are also kept in memory.

The entries live in one SQLite file, ``$TORCHPKG_CACHE_DIR/scan/.../imports.sqlite``
(default ``~/.cache/torchpkg``), and the entries an export found are written in
one transaction when its resolution ends: a file per entry made a first export
pay a file creation per module, which cost as much as a sixth of its parsing on
a busy disk. ``TORCHPKG_SCAN_CACHE=off`` keeps everything in memory.

An entry is only ever read as a list of imports, and one that does not read
back as exactly that (damaged, foreign, another format) is a miss: the source
is parsed and the entry replaced; a file that is not a database is replaced by
a new one. Transactions make concurrent writers safe (a reader sees an entry
whole or not at all), and a cache that cannot be used (no folder, locked past
its timeout, no sqlite3 module) costs the parses it would have saved, nothing
more. A power cut may lose it (no fsync): it is a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import threading
import weakref
from pathlib import Path
from types import ModuleType
from typing import Any

from torchpkg._materialize import cache_root
from torchpkg._source_scan import Anchor, FoundImport, ImportRef, find_imports, resolve_imports

try:
    import sqlite3
except ImportError:  # Pythons built without it: the cache stays in memory
    _sqlite: ModuleType | None = None
else:
    _sqlite = sqlite3

__all__ = ["SCAN_CACHE_ENV", "ScanCache", "scan_cache"]

SCAN_CACHE_ENV = "TORCHPKG_SCAN_CACHE"
_OFF = frozenset({"", "0", "off", "false", "no"})
# Bump when what find_imports returns, or how an entry stores it, changes.
_FORMAT = 1
# Another Python may parse the same text differently (or not at all).
_FOLDER = f"v{_FORMAT}-{sys.implementation.name}-{sys.version_info[0]}{sys.version_info[1]}"
_DATABASE = "imports.sqlite"
_BUSY_TIMEOUT_S = 1.0  # how long to wait for another process's transaction (each takes ~1 ms)
_MEMORY_SIZE = 8192
_NAMED = "="  # prefix of an anchor the source names, so it never reads as an Anchor


class ScanCache:
    """The imports of each module seen, in memory; by source digest on disk when
    ``directory`` is set."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._lock = threading.Lock()  # exports on several threads share one cache
        self._entries: _Entries | None = None
        self._failed = directory is None or _sqlite is None
        # Found since the last flush, to be written in one transaction.
        self._pending: dict[bytes, tuple[FoundImport, ...]] = {}
        # A module read again is the same str (environment caches sources by file
        # stamp): its hash is kept, so a second export finds each module at once.
        self._memory: dict[tuple[str, str, bool], list[ImportRef]] = {}

    def imports(self, source: str, module_name: str, is_package: bool) -> list[ImportRef]:
        """``scan_imports(source, module_name, is_package, module_name)``, parsed once."""
        key = (source, module_name, is_package)
        refs = self._memory.get(key)
        if refs is None:
            found = self.found(source, module_name)
            refs = resolve_imports(found, module_name, is_package, module_name)
            if len(self._memory) >= _MEMORY_SIZE:
                self._memory.pop(next(iter(self._memory)))
            self._memory[key] = refs
        return refs

    def found(self, source: str, filename: str) -> tuple[FoundImport, ...]:
        """``find_imports(source, filename)``, read back if some process parsed this text."""
        key = hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=20).digest()
        found = self._pending.get(key)
        if found is None:
            data = self._use(lambda entries: entries.get(key))
            found = None if data is None else _decode(data, key)
        if found is None:
            found = find_imports(source, filename)
            if not self._failed:
                self._pending[key] = found
        return found

    def flush(self) -> None:
        """Write what was found since the last flush (the resolver calls it when done)."""
        if self._pending:
            rows = [(key, _encode(key, found)) for key, found in self._pending.items()]
            self._pending.clear()
            self._use(lambda entries: entries.put(rows))

    def _use(self, operation: Any) -> Any:
        """``operation(entries)``, or None once the disk cache proved unusable."""
        with self._lock:
            if self._failed or _sqlite is None or self.directory is None:
                return None
            try:
                if self._entries is None or self._entries.pid != os.getpid():
                    # A connection must not be used across a fork: the child opens its own.
                    self._close()
                    self._entries = _Entries(self.directory)
                return operation(self._entries)
            except (OSError, _sqlite.OperationalError):
                self._failed = True  # no folder, locked, read-only, full: memory still works
            except _sqlite.DatabaseError:  # damaged, or not a database: a new file next time
                self._close()
                (self.directory / _DATABASE).unlink(missing_ok=True)
            return None

    def close(self) -> None:
        """Close the connection to the disk cache, if open (the next use opens one)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._entries is not None:
            self._entries.close()
            self._entries = None


class _Entries:
    """The table of entries, in a private folder."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=stat.S_IRWXU, parents=True, exist_ok=True)
        # Private: whoever can write here decides what an export follows.
        folder.chmod(stat.S_IRWXU)
        self.pid = os.getpid()
        self._connection = _connect(folder / _DATABASE)
        # Closed when dropped or at exit, never left to the collector (a ResourceWarning).
        self.close = weakref.finalize(self, self._connection.close)

    def get(self, key: bytes) -> bytes | None:
        row = self._connection.execute("SELECT entry FROM imports WHERE source = ?", (key,))
        found = row.fetchone()
        return found[0] if found is not None and isinstance(found[0], bytes) else None

    def put(self, rows: list[tuple[bytes, bytes]]) -> None:
        with self._connection:  # one transaction
            self._connection.executemany("INSERT OR REPLACE INTO imports VALUES (?, ?)", rows)


def _connect(path: Path) -> Any:
    assert _sqlite is not None
    connection = _sqlite.connect(path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
    try:
        # A cache: no fsync (a power cut may lose it; a damaged file is replaced).
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS imports (source BLOB PRIMARY KEY, entry BLOB NOT NULL)"
        )
    except BaseException:
        connection.close()
        raise
    return connection


def _encode(key: bytes, found: tuple[FoundImport, ...]) -> bytes:
    rows = [
        [
            ref.name,
            ref.level,
            ref.anchor.value if isinstance(ref.anchor, Anchor) else _NAMED + ref.anchor,
            list(ref.names),
            ref.lineno,
            ref.optional,
            ref.dynamic,
        ]
        for ref in found
    ]
    entry = {"format": _FORMAT, "source": key.hex(), "imports": rows}
    return json.dumps(entry, separators=(",", ":")).encode()


def _decode(data: bytes, key: bytes) -> tuple[FoundImport, ...] | None:
    """The imports an entry holds, or None unless it is exactly an entry for ``key``."""
    try:
        entry = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if (
        not isinstance(entry, dict)
        or entry.get("format") != _FORMAT
        or entry.get("source") != key.hex()
        or not isinstance(entry.get("imports"), list)
    ):
        return None
    found = []
    for row in entry["imports"]:
        ref = _row(row)
        if ref is None:
            return None
        found.append(ref)
    return tuple(found)


def _row(row: Any) -> FoundImport | None:
    if not (isinstance(row, list) and len(row) == 7):
        return None
    name, level, anchor, names, lineno, optional, dynamic = row
    if not (
        isinstance(name, str)
        and _is_int(level)
        and level >= 0
        and isinstance(anchor, str)
        and isinstance(names, list)
        and all(isinstance(n, str) for n in names)
        and _is_int(lineno)
        and isinstance(optional, bool)
        and isinstance(dynamic, bool)
    ):
        return None
    if anchor.startswith(_NAMED):
        where: Anchor | str = anchor[len(_NAMED) :]
    elif anchor in (Anchor.PACKAGE.value, Anchor.MODULE.value):
        where = Anchor(anchor)
    else:
        return None
    return FoundImport(name, level, where, tuple(names), lineno, optional, dynamic)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_current: ScanCache | None = None


def scan_cache() -> ScanCache:
    """The cache as the environment configures it now.

    Its memory goes with its directory: pointing ``TORCHPKG_CACHE_DIR`` at an
    empty folder gives an export that parses everything (the benchmark's cold
    export, a test's own cache).
    """
    global _current
    off = os.environ.get(SCAN_CACHE_ENV, "on").strip().lower() in _OFF
    directory = None if off else cache_root() / "scan" / _FOLDER
    if _current is None or _current.directory != directory:
        if _current is not None:
            _current.close()
        _current = ScanCache(directory)
    return _current
