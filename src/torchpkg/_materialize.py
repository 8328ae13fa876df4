"""A package's code tree on disk, for libraries that read the files next to their modules.

transformers lists ``Path(__file__).parent / "models"`` to build its lazy import
table; other libraries open JSON or text files beside their source. A mangled
``__file__`` (torch.package's) names no file, so with ``materialize=True`` the
importer writes the package's code folders once into a private, read-only
directory named by the digest of their contents, and points ``__file__`` there.
Packages with the same code share one directory, so a second load (or a second
export of the same model) writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from torchpkg._archive_reader import ArchiveReader
from torchpkg.mangling import demangle, demangle_text, is_mangled

__all__ = [
    "CACHE_ENV",
    "cache_root",
    "code_records",
    "materialize",
    "packaged_record",
    "shorten_paths",
]

CACHE_ENV = "TORCHPKG_CACHE_DIR"
_READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
_READ_ONLY_DIR = _READ_ONLY_FILE | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


def cache_root() -> Path:
    """``$TORCHPKG_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchpkg``, else ``~/.cache/torchpkg``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "torchpkg"


def code_records(records: Iterable[str]) -> list[str]:
    """The records of every top-level folder that holds source, and top-level modules.

    Pickles saved beside no code (``save_pickle("model", ...)``) stay out, so
    exports of one model with other weights share a directory.
    """
    records = [record for record in records if not record.startswith(".data/")]
    code_tops = {record.partition("/")[0] for record in records if record.endswith(".py")}
    return sorted(record for record in records if record.partition("/")[0] in code_tops)


def materialize(reader: ArchiveReader, records: list[str], root: Path | None = None) -> Path:
    """The directory holding ``records`` as files, written now unless already there."""
    root = cache_root() if root is None else root
    digest = hashlib.sha256()
    contents = []
    for record in records:
        data = reader.read(record)
        contents.append(data)
        digest.update(f"{record}\0{len(data)}\0".encode())
        digest.update(data)
    base = root / "files"
    target = base / digest.hexdigest()[:40]
    if target.is_dir():
        return target
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(stat.S_IRWXU)  # private: other users cannot swap the files
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=base))
    try:
        folders = {partial}
        for record, data in zip(records, contents, strict=True):
            path = partial / record
            path.parent.mkdir(parents=True, exist_ok=True)
            folders.update(path.parents)
            path.write_bytes(data)
            path.chmod(_READ_ONLY_FILE)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            if folder.is_relative_to(partial):
                folder.chmod(_READ_ONLY_DIR)
        # The rename is what publishes the tree: a directory under its final name is whole.
        os.rename(partial, target)
    except OSError:
        _remove(partial)
        if target.is_dir():  # another process published the same tree first
            return target
        raise
    return target


def _remove(path: Path) -> None:
    for folder, _dirs, _files in os.walk(path):
        os.chmod(folder, stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


_MATERIALIZED = re.compile(r"^.*[\\/]files[\\/][0-9a-f]{40}[\\/]")


def packaged_record(filename: str) -> str | None:
    """The archive record behind a code filename: mangled, or in a materialised tree."""
    if is_mangled(filename):
        return demangle(filename)
    match = _MATERIALIZED.match(filename)
    return filename[match.end() :].replace("\\", "/") if match is not None else None


def shorten_paths(text: str) -> str:
    """``text`` with mangle parents and materialised folders removed, for messages."""
    return _MATERIALIZED_ANYWHERE.sub("", demangle_text(text))


_MATERIALIZED_ANYWHERE = re.compile(r"[^\s\"'(]*[\\/]files[\\/][0-9a-f]{40}[\\/]")
