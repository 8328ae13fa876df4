"""The modules of an archive as a tree: what the importer can serve, and from where."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["ModuleNode"]


@dataclass
class ModuleNode:
    """A module or folder in the archive; ``extern`` hands its subtree to the environment."""

    source_file: str | None = None
    is_package: bool = False
    extern: bool = False
    children: dict[str, ModuleNode] = field(default_factory=dict)

    @classmethod
    def from_archive(cls, records: Iterable[str], extern_modules: Iterable[str]) -> ModuleNode:
        """Folders are packages (with or without ``__init__.py``), ``.py`` files modules."""
        root = cls(is_package=True)
        for record in records:
            if record.startswith(".data/"):
                continue
            *folders, last = record.split("/")
            node = root
            for folder in folders:
                node = node.children.setdefault(folder, cls(is_package=True))
                node.is_package = True
            if last == "__init__.py":
                node.source_file = record
            elif last.endswith(".py"):
                child = node.children.setdefault(last[:-3], cls())
                if child.source_file is None:
                    child.source_file = record
        for name in extern_modules:
            *parents, last = name.split(".")
            node = root
            for part in parents:
                node = node.children.setdefault(part, cls(is_package=True))
                if node.extern:  # a shorter extern name already covers this one
                    break
            else:
                node.children[last] = cls(extern=True)
        return root

    def find(self, name: str) -> ModuleNode | None:
        """The node serving ``name``: its own, an extern ancestor's, or None."""
        node = self
        for atom in name.split("."):
            if node.extern:
                return node
            child = node.children.get(atom)
            if child is None:
                return None
            node = child
        return node
