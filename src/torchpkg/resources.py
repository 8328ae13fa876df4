"""``importlib.resources`` support for packaged code.

The package importer's loader returns a :class:`PackageResourceReader` from
``get_resource_reader(fullname)``, so code inside a package can read the data
files packaged next to it exactly as it would from an installed library::

    importlib.resources.files(__package__).joinpath("vocab.txt").read_text()

``files()`` gives an :class:`ArchiveTraversable`; the legacy reader methods
(``open_resource``, ``is_resource``, ``contents``, ``resource_path``) work
through it, answering as torch.package's reader does where the protocol lets
them.  ``PackageImporter.get_resource_reader(name)`` hands out the same reader.
Nothing here touches the file system: records are read from a
:class:`RecordSource` (the archive reader).
"""

from __future__ import annotations

import errno
import io
import os
import sys
import weakref
from collections.abc import Iterator, Sequence
from typing import IO, Any, Literal, Protocol, overload

from torchpkg.errors import RecordNotFoundError

# importlib.abc.Traversable is deprecated from 3.12 (warning on access) and gone
# in 3.14; importlib.resources.abc only exists from 3.11.
if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable, TraversableResources
else:
    from importlib.abc import Traversable, TraversableResources

__all__ = ["ArchiveTraversable", "PackageResourceReader", "RecordSource", "ResourceNotFoundError"]


class ResourceNotFoundError(RecordNotFoundError, FileNotFoundError):
    """``open_resource`` of a name that is not a file of the package.

    A ``FileNotFoundError``, as importlib's reader protocol asks, and (as a
    ``RecordNotFoundError``) the ``RuntimeError`` torch.package raises there.
    """


class RecordSource(Protocol):
    """The records of an archive, as the archive reader offers them.

    Record paths are ``"/"``-separated without a leading ``"/"``.  The record list
    must not change once read: a directory index is built from it once per source
    and cached against the source object, which must therefore be hashable and
    weak-referenceable (instances of ordinary classes are).
    """

    def records(self) -> Sequence[str]:
        """All record paths."""
        ...

    def has_record(self, name: str) -> bool:
        """Whether ``name`` is a record."""
        ...

    def read(self, name: str) -> bytes:
        """The contents of the record ``name``."""
        ...


# Directory key -> sorted names of its direct children. A directory's key is its
# path with a trailing "/" ("" for the root), which keeps a directory with an
# empty name (records like "/top.txt", written for the "" package) distinct from
# the root.
_Index = dict[str, tuple[str, ...]]

_indexes: weakref.WeakKeyDictionary[RecordSource, _Index] = weakref.WeakKeyDictionary()


def _index_for(source: RecordSource) -> _Index:
    """Return the directory index of ``source``, building it on first use."""
    index = _indexes.get(source)
    if index is None:
        index = _indexes[source] = _build_index(source.records())
    return index


def _build_index(records: Sequence[str]) -> _Index:
    # Dicts as insertion-ordered sets: each child is listed once, however many
    # records lie below it.
    children: dict[str, dict[str, None]] = {"": {}}
    for record in records:
        parent = ""
        start = 0
        while (slash := record.find("/", start)) != -1:
            children[parent][record[start:slash]] = None
            parent = record[: slash + 1]
            children.setdefault(parent, {})
            start = slash + 1
        children[parent][record[start:]] = None
    return {key: tuple(sorted(names)) for key, names in children.items()}


class ArchiveTraversable(Traversable):
    """A path inside an archive: a file (a record) or a directory (a record prefix).

    Built from its path segments: ``ArchiveTraversable(source, "my_pkg", "data.txt")``.
    A path that is both a record and a prefix of other records is a directory.
    Paths compare equal when they name the same segments of the same source object.
    """

    __slots__ = ("_index", "_parts", "_source")

    def __init__(self, source: RecordSource, *parts: str) -> None:
        self._source = source
        self._parts = parts
        self._index = _index_for(source)

    @property
    def name(self) -> str:
        """The last segment of the path (``""`` for the archive root)."""
        return self._parts[-1] if self._parts else ""

    @property
    def _record(self) -> str:
        return "/".join(self._parts)

    @property
    def _dir_key(self) -> str:
        return self._record + "/" if self._parts else ""

    def is_dir(self) -> bool:
        """Whether some record lies below this path."""
        return self._dir_key in self._index

    def is_file(self) -> bool:
        """Whether this path is a record (and not also a directory)."""
        return not self.is_dir() and self._source.has_record(self._record)

    def iterdir(self) -> Iterator[ArchiveTraversable]:
        """The direct children, files and directories, each once, in name order."""
        names = self._index.get(self._dir_key)
        if names is None:
            code = errno.ENOTDIR if self.is_file() else errno.ENOENT
            raise _os_error(code, self._record)
        # Built eagerly so that a missing directory raises here, not at first next().
        return iter([ArchiveTraversable(self._source, *self._parts, name) for name in names])

    def joinpath(self, *descendants: str | os.PathLike[str]) -> ArchiveTraversable:
        """The path below this one; each descendant may hold several ``/``-separated segments.

        Empty and ``.`` segments are dropped, as ``pathlib`` does.  The result need not
        exist.
        """
        parts = [
            part
            for descendant in descendants
            for part in os.fspath(descendant).split("/")
            if part not in ("", ".")
        ]
        return ArchiveTraversable(self._source, *self._parts, *parts)

    def __truediv__(self, child: str | os.PathLike[str]) -> ArchiveTraversable:
        return self.joinpath(child)

    def read_bytes(self) -> bytes:
        """The record's contents."""
        self._require_file()
        return self._source.read(self._record)

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        """The record's contents decoded (UTF-8 unless told), with universal newlines."""
        with self.open("r", encoding=encoding, errors=errors) as stream:
            return stream.read()

    @overload
    def open(
        self,
        mode: Literal["r", "rt"] = "r",
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> io.TextIOWrapper: ...
    @overload
    def open(self, mode: Literal["rb"]) -> io.BytesIO: ...
    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> IO[Any]:
        """Open the record for reading: ``"r"`` (text) or ``"rb"`` (binary).

        Text mode takes ``io.TextIOWrapper``'s reading arguments, by position or by
        keyword: ``encoding``, ``errors`` and ``newline``.  The encoding defaults to
        UTF-8 rather than the locale's: an archive's bytes do not change with the
        machine that loads it.
        """
        if mode == "rb":
            if args or kwargs:
                raise ValueError("binary mode doesn't take encoding, errors or newline arguments")
            return io.BytesIO(self.read_bytes())
        if mode not in ("r", "rt"):
            raise ValueError(f"invalid mode {mode!r}: archive resources open with 'r' or 'rb'")
        return _text_stream(io.BytesIO(self.read_bytes()), *args, **kwargs)

    def _require_file(self) -> None:
        if self.is_dir():
            raise _os_error(errno.EISDIR, self._record)
        if not self._source.has_record(self._record):
            raise _os_error(errno.ENOENT, self._record)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArchiveTraversable):
            return NotImplemented
        return self._source is other._source and self._parts == other._parts

    def __hash__(self) -> int:
        return hash((id(self._source), self._parts))

    def __repr__(self) -> str:
        return f"ArchiveTraversable({self._source!r}, {self._record!r})"


class PackageResourceReader(TraversableResources):
    """The resource reader of one package: its files are those below ``package_dir``.

    ``package_dir`` is the package's directory in the archive (``"my_pkg/sub"`` for
    ``my_pkg.sub``, ``""`` for top-level modules). ``archive`` names the archive in
    errors. ``folder`` is the unzipped package the records are files of, if they
    are: only then has a resource a ``resource_path``.
    """

    def __init__(
        self,
        source: RecordSource,
        package_dir: str,
        *,
        archive: str = "the package",
        folder: str | None = None,
    ) -> None:
        self._source = source
        self._package_dir = package_dir
        self._archive = archive
        self._folder = folder

    def files(self) -> ArchiveTraversable:
        """The package's directory."""
        return ArchiveTraversable(self._source).joinpath(self._package_dir)

    # typeshed expects the BufferedReader of a real file; a BytesIO reads the same.
    def open_resource(self, resource: str) -> io.BytesIO:  # type: ignore[override]
        """The resource's bytes, as a binary stream (a ``BytesIO``, as in torch.package)."""
        path = self.files().joinpath(resource)
        if not path.is_file():
            raise ResourceNotFoundError(path._record, self._archive)
        return path.open("rb")

    def resource_path(self, resource: str) -> str:
        """The resource's file in an unzipped package; a zip's records have no path
        (``FileNotFoundError``, and importlib then reads through ``open_resource``)."""
        path = self.files().joinpath(resource)
        if self._folder is None or not path.is_file():
            raise FileNotFoundError(resource)
        return os.path.join(self._folder, *path._record.split("/"))

    def __repr__(self) -> str:
        return f"PackageResourceReader({self._source!r}, {self._package_dir!r})"


def _text_stream(
    buffer: io.BytesIO,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> io.TextIOWrapper:
    """``io.TextIOWrapper(buffer, encoding, errors, newline)`` with UTF-8 in place of the
    locale's encoding.  (Its other arguments only affect writing.)"""
    return io.TextIOWrapper(
        buffer, "utf-8" if encoding is None else encoding, errors=errors, newline=newline
    )


def _os_error(code: int, path: str) -> OSError:
    # OSError(errno, ...) picks the subclass (FileNotFoundError, IsADirectoryError,
    # NotADirectoryError) and puts the path in the message and in `.filename`.
    return OSError(code, os.strerror(code), path)
