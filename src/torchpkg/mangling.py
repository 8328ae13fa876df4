"""Mangle parents: every PackageImporter serves its modules under its own parent.

``foo.bar`` loaded by an importer becomes ``<torch_package_3>.foo.bar``. The
spelling is torch.package's, so torch's own helpers (TorchScript's demangling,
torch.compile's module lookup) recognise the names. Mangling happens on import
only; nothing mangled is ever written into an archive.
"""

from __future__ import annotations

import itertools
import re
import threading

from torchpkg.errors import MangleError

__all__ = [
    "PackageMangler",
    "demangle",
    "demangle_text",
    "get_mangle_prefix",
    "is_mangled",
    "mentions_mangled",
]

_MANGLED = re.compile(r"<torch_package_\d+>")
_MANGLED_DOT = re.compile(r"<torch_package_\d+>\.")
# torch.package numbers its importers from 0 in the same process and registers
# their modules where torch.compile looks them up; counting from here keeps our
# parents from ever taking one of its names.
FIRST_INDEX = 1_000_000
_counter = itertools.count(FIRST_INDEX)
_counter_lock = threading.Lock()


def is_mangled(name: str) -> bool:
    """Whether ``name`` (a module name or file name) carries a mangle parent."""
    return _MANGLED.match(name) is not None


def demangle(name: str) -> str:
    """``<torch_package_0>.foo.bar`` -> ``foo.bar``; other names are returned as given.

    As in torch.package, everything up to the first dot is the mangle parent, so
    a bare parent (or ``<torch_package_0>foo``) demangles to ``""``.
    """
    if not is_mangled(name):
        return name
    _, dot, rest = name.partition(".")
    return rest if dot else ""


def mentions_mangled(text: str) -> bool:
    """Whether a mangled name appears anywhere in ``text`` (an error message, a repr)."""
    return _MANGLED.search(text) is not None


def demangle_text(text: str) -> str:
    """``text`` with every ``<torch_package_N>.`` removed, for messages users read."""
    return _MANGLED_DOT.sub("", text)


def get_mangle_prefix(name: str) -> str:
    """The mangle parent of ``name`` (``<torch_package_0>``), or ``name`` if it has none.

    The parent is everything up to the first dot, as ``demangle`` reads it.
    """
    return name.partition(".")[0] if is_mangled(name) else name


class PackageMangler:
    """Mangles and demangles names for one importer, with a process-unique parent."""

    def __init__(self) -> None:
        with _counter_lock:
            self._parent = f"<torch_package_{next(_counter)}>"

    def parent_name(self) -> str:
        return self._parent

    def mangle(self, name: str) -> str:
        if not isinstance(name, str):
            raise TypeError(f"module names are str, not {type(name).__name__}")
        if not name:
            raise MangleError("cannot mangle an empty module name")
        return f"{self._parent}.{name}"

    def demangle(self, name: str) -> str:
        """Strip this importer's parent; names mangled by other importers are left alone."""
        if name.startswith(self._parent + "."):
            return name[len(self._parent) + 1 :]
        return name
