"""Pickling for archives: persistent ids for storages and ``__reduce_package__``.

Export uses the C pickler when objects come from the running interpreter
(``sys_importer``), and a Python pickler that asks the exporter's importer for
every global name when objects may come from another package (re-export), so
mangled names never reach an archive. torch is only touched when a pickle
holds torch objects: pickling plain Python objects never imports it.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import enum
import pickle
import re
import sys
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, ClassVar

from torchpkg import _exported
from torchpkg._tensors import StorageOf
from torchpkg.environment import Importer, _getattribute
from torchpkg.errors import (
    ImportedObjectNotFoundError,
    ObjMismatchError,
    ObjNotFoundError,
    PackagingErrorReason,
    Problem,
)
from torchpkg.mangling import mentions_mangled

if TYPE_CHECKING:
    from torchpkg.security._guard import PickleGuard

__all__ = ["Kind", "PackagePickler", "PackageUnpickler", "classify", "create_pickler"]

PersistentId = Callable[[Any], Any]


class PackagePickler(pickle._Pickler):
    """Names every global through an Importer, so objects loaded from a package
    are written under their original (demangled) module names."""

    dispatch: ClassVar[dict[type, Callable[..., None]]] = pickle._Pickler.dispatch.copy()

    def __init__(self, file: IO[bytes], protocol: int, importer: Importer) -> None:
        super().__init__(file, protocol)
        self.importer = importer

    def save_global(self, obj: Any, name: str | None = None) -> None:
        try:
            module_name, name = self.importer.get_name(obj, name)
        except (ObjNotFoundError, ObjMismatchError) as error:
            # What torch.package's pickler raises: code that catches it keeps working.
            raise pickle.PicklingError(f"Can't pickle {obj!r}: {error}") from error
        # pickle._Pickler's internals are not in typeshed.
        pickler: Any = self
        if pickler.proto >= 4:
            pickler.save(module_name)
            pickler.save(name)
            pickler.write(pickle.STACK_GLOBAL)
        else:
            pickler.write(pickle.GLOBAL + f"{module_name}\n{name}\n".encode())
        pickler.memoize(obj)

    # Functions dispatch straight to save_global; classes reach it through save_type.
    dispatch[type(len)] = save_global
    dispatch[type(save_global)] = save_global


def create_pickler(
    file: IO[bytes],
    protocol: int,
    persistent_id: PersistentId,
    importer: Importer,
    reducers: Mapping[type, Callable[[Any], Any]] | None = None,
) -> pickle.Pickler | PackagePickler:
    """A pickler calling ``persistent_id`` for every object; ``reducers`` (by exact
    type) go before ``copyreg``'s and the objects' own ``__reduce_ex__``."""
    from torchpkg.environment import sys_importer

    # The hook as a static method of a class made for it: one Python call per pickled
    # object, not two (Python 3.13 no longer lets an instance attribute replace it).
    hooks: dict[str, Any] = {"persistent_id": staticmethod(persistent_id)}
    if reducers:
        hooks["dispatch_table"] = {**copyreg.dispatch_table, **reducers}
    if importer is sys_importer:
        return type("_Pickler", (pickle.Pickler,), hooks)(file, protocol)  # type: ignore[no-any-return]
    pickler_class = type("_PackagePickler", (PackagePickler,), hooks)
    return pickler_class(file, protocol, importer)  # type: ignore[no-any-return]


# Renames that keep old pickles loading after an extern library dropped a name.
_COMPAT_NAMES: dict[str, dict[str, object]] = {
    "numpy": {"str": str, "int": int, "float": float, "bool": bool, "object": object},
}


def python3_name(module_name: str, name: str) -> tuple[str, str]:
    """Pickles of protocol 2 and below name some globals as Python 2 did
    (``copy_reg._reconstructor``); the C unpickler maps them back only when
    ``find_class`` is not overridden, so we do it here, for export and load alike."""
    renamed = _compat_pickle.NAME_MAPPING.get((module_name, name))
    if renamed is not None:
        return renamed
    return _compat_pickle.IMPORT_MAPPING.get(module_name, module_name), name


class PackageUnpickler(pickle.Unpickler):
    """Finds classes through a PackageImporter and rebuilds persistent objects.

    With a ``guard`` (safe loading), every global is judged before its module is
    imported and the object found is checked before the pickle gets it.
    """

    def __init__(
        self,
        file: IO[bytes],
        importer: Importer,
        persistent_load: Callable[[Any], Any],
        guard: PickleGuard | None = None,
    ) -> None:
        super().__init__(file)
        self._file = file
        self._importer = importer
        self._persistent_load = persistent_load
        self._replacements = _replacements()
        self._guard = guard

    def load(self) -> Any:
        if self._guard is None:
            return super().load()
        with self._guard.loading(self._file):
            return super().load()

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent_load(pid)

    def find_class(self, module_name: str, name: str) -> Any:
        module_name, name = python3_name(module_name, name)
        verdict = self._guard.check_name(module_name, name) if self._guard is not None else None
        renamed = _COMPAT_NAMES.get(module_name, {}).get(name) or self._replacements.get(
            (module_name, name)
        )
        if renamed is not None:
            return renamed
        module = self._importer.import_module(module_name)
        try:
            found = _getattribute(module, name)
        except AttributeError:
            raise ImportedObjectNotFoundError(
                f"the pickle needs {module_name}.{name}, but module {module_name!r} has no "
                f"attribute {name!r}: the package's copy of the module differs from the one "
                "the object was pickled with. Re-export the package.",
                name=name,
                obj=module,
            ) from None
        if self._guard is not None and verdict is not None:
            self._guard.check_object(module_name, name, verdict, found)
        return found


def _replacements() -> dict[tuple[str, str], Any]:
    """Faster stand-ins for torch's tensor rebuilders, for one load.

    ``_rebuild_tensor_v2`` asks, for every tensor, whether a FakeTensorMode is
    active (a third of the time of loading thousands of small tensors). No mode
    can start or stop in the middle of unpickling, so ask once: outside fake mode
    the rebuild is the same without that question.
    """
    torch = torch_if_loaded()
    if torch is None or torch._guards.detect_fake_mode(None) is not None:
        return {}
    rebuild = torch._utils._rebuild_tensor
    set_metadata = torch._utils.set_tensor_metadata

    def rebuild_tensor_v2(  # noqa: PLR0917 - the signature torch pickles calls with
        storage: Any,
        storage_offset: int,
        size: Any,
        stride: Any,
        requires_grad: bool,
        backward_hooks: Any,
        metadata: Any = None,
    ) -> Any:
        tensor = rebuild(storage, storage_offset, size, stride)
        tensor.requires_grad = requires_grad
        if metadata:
            set_metadata(tensor, metadata)
        tensor._backward_hooks = backward_hooks
        return tensor

    return {("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2}


def torch_if_loaded() -> Any:
    """The torch module if something already imported it, else None (never imports it)."""
    return sys.modules.get("torch")


def pickle_protocol_error(protocol: object) -> ValueError | None:
    if isinstance(protocol, int) and not isinstance(protocol, bool) and 2 <= protocol <= 5:
        return None
    return ValueError(
        f"pickle_protocol must be an int from 2 to {pickle.HIGHEST_PROTOCOL}, got {protocol!r}; "
        "torch.package uses 3 (the default) or 4."
    )


_MISSING_MODULE = re.compile(r"(?:import of module|No module named) '([^']+)'")
_LOCAL_OBJECT = re.compile(r"Can't (?:pickle|get) local object")
_MANGLED_BYTES = re.compile(rb"<torch_package_\d+>")


def pickling_problem(node: str, obj: object, exc: BaseException) -> Problem:
    """Why pickling failed, read off the pickler's error (it carries no structured cause)."""
    text = str(exc)
    context = f"{type(obj).__name__} object: {text}"
    if mentions_mangled(text):
        return Problem(PackagingErrorReason.FROM_ANOTHER_PACKAGE, node, context)
    missing = _MISSING_MODULE.search(text)
    if missing is not None:
        module = missing.group(1)
        return Problem(PackagingErrorReason.MODULE_NOT_FOUND, module, f"{node} pickles: {text}")
    lookup_failed = isinstance(exc.__cause__, (ObjNotFoundError, ObjMismatchError))
    if "<lambda>" not in text and (lookup_failed or "attribute lookup" in text):
        return Problem(PackagingErrorReason.OBJECT_NOT_FOUND, node, context)
    return Problem(PackagingErrorReason.UNPICKLABLE, node, context)


def as_pickler_error(exc: BaseException) -> BaseException:
    """The exception torch.package's pickler (pure Python) raises for the failure
    the C pickler raised ``exc`` for: a local class or function is an
    AttributeError to the C pickler, a PicklingError to the Python one."""
    if isinstance(exc, AttributeError) and _LOCAL_OBJECT.match(str(exc)):
        error = pickle.PicklingError(str(exc))
        error.__cause__ = exc
        return error
    return exc


def may_name_mangled(data: memoryview) -> bool:
    """Whether a pickle may name a module loaded from a package (a quick look, no scan)."""
    return _MANGLED_BYTES.search(data) is not None


class Kind(enum.Enum):
    """How the exporter's pickler treats objects of a type."""

    PLAIN = "plain"  # pickled as usual
    STORAGE = "storage"  # a record of its own, referenced by a persistent id
    REDUCE = "reduce"  # __reduce_package__ (or an ExportedProgram, saved our way)


def classify(cls: type) -> Kind:
    torch = torch_if_loaded()
    if cls is StorageOf or (
        torch is not None and issubclass(cls, (torch.storage.TypedStorage, torch.UntypedStorage))
    ):
        return Kind.STORAGE
    if issubclass(cls, type):  # classes are pickled by name, even those with the hook
        return Kind.PLAIN
    if getattr(cls, "__reduce_package__", None) is not None or _exported.is_exported_program(cls):
        return Kind.REDUCE
    return Kind.PLAIN
