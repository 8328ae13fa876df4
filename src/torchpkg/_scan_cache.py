"""The imports found in module sources, kept by content across exports and processes.

Parsing is most of a first export's time (an ``ast.parse`` of every interned
module). What ``find_imports`` finds depends on the text alone, so it is kept
on disk under a digest of the source (one small JSON file per source), and a CI
run whose test processes export the same code parses each file once. Within a
process, each module's resolved imports are also kept in memory.

The disk cache is ``$TORCHPKG_CACHE_DIR/scan`` (default
``~/.cache/torchpkg/scan``); ``TORCHPKG_SCAN_CACHE=off`` keeps it in memory
only. An entry is only ever read as a list of imports, and one that does not
read back as exactly that (damaged, foreign, another format) is a miss: the
source is parsed and the entry replaced. Entries are written to a temporary
file and renamed, so concurrent processes see no entry or a whole one; a cache
that cannot be read or written costs the parses it would have saved, nothing
more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from torchpkg._materialize import cache_root
from torchpkg._source_scan import Anchor, FoundImport, ImportRef, find_imports, resolve_imports

__all__ = ["SCAN_CACHE_ENV", "ScanCache", "scan_cache"]

SCAN_CACHE_ENV = "TORCHPKG_SCAN_CACHE"
_OFF = frozenset({"", "0", "off", "false", "no"})
# Bump when what find_imports returns, or how an entry stores it, changes.
_FORMAT = 1
# Another Python may parse the same text differently (or not at all).
_FOLDER = f"v{_FORMAT}-{sys.implementation.name}-{sys.version_info[0]}{sys.version_info[1]}"
_MEMORY_SIZE = 8192
_NAMED = "="  # prefix of an anchor the source names, so it never reads as an Anchor


class ScanCache:
    """The imports of each module seen, in memory; by source digest on disk when
    ``directory`` is set."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._disk = directory  # None once the directory proved unusable
        self._checked = False
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
        found = self._load(key)
        if found is None:
            found = find_imports(source, filename)
            self._store(key, found)
        return found

    def _folder(self) -> Path | None:
        """The directory, made (private) on first use; None when that fails."""
        if not self._checked and self._disk is not None:
            self._checked = True
            try:
                self._disk.mkdir(mode=stat.S_IRWXU, parents=True, exist_ok=True)
                # Private: whoever can write here decides what an export follows.
                self._disk.chmod(stat.S_IRWXU)
            except OSError:
                self._disk = None
        return self._disk

    def _load(self, key: bytes) -> tuple[FoundImport, ...] | None:
        folder = self._folder()
        if folder is None:
            return None
        try:
            data = (folder / f"{key.hex()}.json").read_bytes()
        except OSError:
            return None
        return _decode(data, key)

    def _store(self, key: bytes, found: tuple[FoundImport, ...]) -> None:
        folder = self._folder()
        if folder is None:
            return
        try:
            fd, partial = tempfile.mkstemp(prefix=".partial-", dir=folder)
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(_encode(key, found))
                os.replace(partial, folder / f"{key.hex()}.json")
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(partial)
                raise
        except OSError:
            self._disk = None  # full or read-only: stop using it, memory still works


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
        _current = ScanCache(directory)
    return _current
