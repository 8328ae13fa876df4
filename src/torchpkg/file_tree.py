"""A printable, queryable tree of an archive's records (``file_structure()``).

``str(directory)`` renders exactly like ``torch.package``'s ``Directory``, so the
output of ``PackageImporter.file_structure()`` (and of ``torchpkg tree``) is the
same in both libraries. torchpkg's own records (``.data/torchpkg/``: environment,
sources, manifest), which torch.package ignores, are left out unless asked for,
so the same export shows the same tree in both::

    ─── my_package.pt
        ├── .data
        │   └── version
        ├── models
        │   └── model_1.pkl
        └── byteorder
"""

from __future__ import annotations

from collections.abc import Iterable

from torchpkg.glob import GlobGroup, GlobPattern

__all__ = ["PRIVATE_RECORDS", "Directory", "directory_from_records", "select_records"]

# Where torchpkg keeps its own metadata records in an archive.
PRIVATE_RECORDS = ".data/torchpkg/"


class Directory:
    """A node of the tree: a directory (with ``children``) or a file (without).

    Directories exist only as prefixes of records; when a record's path is also
    the prefix of another record, the directory wins, so every record below it
    stays reachable.
    """

    __slots__ = ("children", "is_dir", "name")

    def __init__(self, name: str, is_dir: bool) -> None:
        self.name = name
        self.is_dir = is_dir
        self.children: dict[str, Directory] = {}

    def has_file(self, filename: str) -> bool:
        """Return whether ``filename`` (``"a/b/c.py"``, relative to this node) is in the tree.

        A directory path answers True too, as in torch.package, whose users test for
        directories this way (``has_file(".data/ts_code/0")``).
        """
        node = self
        for part in filename.split("/"):
            child = node.children.get(part)
            if child is None:
                return False
            node = child
        return True

    def _add_record(self, record: str) -> None:
        *dir_names, file_name = record.split("/")
        node = self
        for dir_name in dir_names:
            child = node.children.get(dir_name)
            if child is None or not child.is_dir:
                child = node.children[dir_name] = Directory(dir_name, is_dir=True)
            node = child
        # A directory of the same name keeps its children.
        if file_name not in node.children:
            node.children[file_name] = Directory(file_name, is_dir=False)

    def __str__(self) -> str:
        lines = [f"─── {self.name}\n"]
        self._render_children("    ", lines)
        return "".join(lines)

    def _render_children(self, indent: str, lines: list[str]) -> None:
        # Directories first, then files, each group in code-point order.
        ordered = sorted(self.children.values(), key=lambda node: (not node.is_dir, node.name))
        for index, child in enumerate(ordered):
            last = index == len(ordered) - 1
            lines.append(f"{indent}{'└── ' if last else '├── '}{child.name}\n")
            if child.is_dir:
                child._render_children(indent + ("    " if last else "│   "), lines)


def select_records(
    records: Iterable[str],
    include: GlobPattern = "**",
    exclude: GlobPattern = (),
    *,
    include_private: bool = False,
) -> list[str]:
    """The ``"/"``-separated ``records`` selected by ``include`` and ``exclude`` (glob
    patterns over archive paths, see :mod:`torchpkg.glob`), in their order.

    torchpkg's own records (under :data:`PRIVATE_RECORDS`) only with ``include_private``.
    """
    selected = GlobGroup(include, exclude=exclude, separator="/")
    return [
        record
        for record in records
        if selected.matches(record) and (include_private or not record.startswith(PRIVATE_RECORDS))
    ]


def directory_from_records(
    name: str,
    records: Iterable[str],
    include: GlobPattern = "**",
    exclude: GlobPattern = (),
    *,
    include_private: bool = False,
) -> Directory:
    """Build the tree named ``name`` from the records :func:`select_records` selects."""
    root = Directory(name, is_dir=True)
    for record in select_records(records, include, exclude, include_private=include_private):
        root._add_record(record)
    return root
