"""``torch.package.analyze``: what a callable uses, where broken modules came from,
and whether an object was loaded from a package."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from types import FrameType, ModuleType
from typing import Any

from torchpkg.errors import PackagingError
from torchpkg.mangling import is_mangled

__all__ = ["find_first_use_of_broken_modules", "is_from_package", "trace_dependencies"]


def trace_dependencies(
    callable: Callable[..., Any],  # torch.package's parameter name
    inputs: Iterable[tuple[Any, ...]],
) -> list[str]:
    """The modules whose Python functions ``callable(*args)`` calls, over all ``inputs``.

    Each call is credited to the ``__module__`` of the function called, found as
    torch.package finds it (the frame's globals, then its locals, then a method
    of ``self``); calls into C are not seen. Names are listed in the order of
    first use, mangled as they are for code loaded from a package.
    """
    used: dict[str, None] = {}

    def record(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            module = _module_of_call(frame)
            if module is not None:
                used.setdefault(module, None)

    previous = sys.getprofile()
    sys.setprofile(record)
    try:
        for args in inputs:
            callable(*args)
    finally:
        sys.setprofile(previous)  # a profiler that was already running keeps running
    return list(used)


def _module_of_call(frame: FrameType) -> str | None:
    name = frame.f_code.co_name
    try:
        if name in frame.f_globals:
            called = frame.f_globals[name]
        elif name in frame.f_locals:
            called = frame.f_locals[name]
        elif "self" in frame.f_locals:
            called = getattr(frame.f_locals["self"], name, None)
        else:
            return None
        module = getattr(called, "__module__", None)
    except Exception:  # a property that raises must not break the traced code
        return None
    return module if isinstance(module, str) and module else None


def find_first_use_of_broken_modules(exc: PackagingError) -> dict[str, list[str]]:
    """For each module ``exc`` reports as broken, the path by which the export
    first reached it: ``{"m.n.o": ["<pkg.obj.pkl>", "a.b", "m.n.o"]}``."""
    if not isinstance(exc, PackagingError):
        raise TypeError(
            f"find_first_use_of_broken_modules() takes a PackagingError, not {type(exc).__name__}"
        )
    graph = exc.dependency_graph
    if graph is None:  # raised by hand, without a graph: the chains it carries will do
        return {p.subject: list(p.chain) or [p.subject] for p in exc.problems}
    return {
        name: graph.first_path(name) for name, attrs in graph.nodes.items() if attrs.get("error")
    }


def is_from_package(obj: Any, *, modules_by_name: bool = False) -> bool:
    """Whether ``obj`` was loaded from a package: its class (or, for a plain
    module, the module itself) has a mangled name, as torch.package decides.

    Objects of extern or standard-library classes are not, even when packaged
    code made them. A module of a ``ModuleType`` subclass is judged by its
    class, as in torch.package; ``modules_by_name=True`` judges every module by
    its own name, so a packaged module that an extern class implements (a lazy
    module, say) counts as loaded from the package.
    """
    if type(obj) is ModuleType or (modules_by_name and isinstance(obj, ModuleType)):
        return is_mangled(obj.__name__)
    return is_mangled(type(obj).__module__)
