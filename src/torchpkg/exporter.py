"""PackageExporter: writes code, objects and data into a torch.package archive.

Records are streamed into a temporary file as they are saved. As in
torch.package, an object that cannot be pickled fails its ``save_pickle`` call
(a module that does not exist, its ``save_module`` call), and dependency
problems are collected and raised together at ``close()``
(``collect_errors=True`` collects the failures of those calls too). Only an export
with no problems replaces the target (atomically, for paths). A failed export
leaves nothing behind.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from torchpkg import _exported, _tensors, _torchscript
from torchpkg._archive import ArchiveWriter
from torchpkg._gc import paused_collection
from torchpkg._graph import DependencyGraph
from torchpkg._hooks import ActionHook, RemovableHandle
from torchpkg._main_module import MAIN_MODULE, MainModule, MainRenamer, names_main
from torchpkg._paths import record_path, write_framework_records, write_module
from torchpkg._pickle_scan import scan_globals_fast
from torchpkg._staging import StagedTarget
from torchpkg.environment import Importer, OrderedImporter, mangled_name_hint, sys_importer
from torchpkg.errors import (
    EmptyMatchError,
    PackagingError,
    PackagingErrorReason,
    Problem,
    add_note,
)
from torchpkg.glob import GlobPattern
from torchpkg.mangling import is_mangled
from torchpkg.pickling import (
    Kind,
    as_pickler_error,
    classify,
    create_pickler,
    may_name_mangled,
    pickle_protocol_error,
    pickling_problem,
    python3_name,
    torch_if_loaded,
)
from torchpkg.policy import Action, Policy
from torchpkg.records import EnvironmentRecord
from torchpkg.resolver import Resolver, pickle_node

# The errors too, as torch.package.package_exporter offers them.
__all__ = ["EmptyMatchError", "PackageExporter", "PackagingError", "PackagingErrorReason"]

logger = logging.getLogger("torchpkg")


# What a pickler raises for an object it cannot pickle.
_PICKLING_ERRORS = (pickle.PicklingError, TypeError, AttributeError, ValueError)

# As in torch.package, saving a ScriptModule is opt-in: set this to False to allow it
# (or, for one exporter, PackageExporter(..., allow_script_modules=True)).
_gate_torchscript_serialization = True


class PackageExporter:
    """Write a package: pickled objects, their code, and any text or binary data.

    ``f`` is a path (written atomically on a successful ``close()``) or a
    writable binary file object (written only on success). ``importer`` finds
    modules and names objects; pass ``(package_importer, sys_importer)`` to
    re-export objects loaded from another package.

    ``collect_errors=True`` (torchpkg only) makes ``save_pickle`` record the
    objects it cannot pickle (and ``save_module`` the modules that do not
    exist) instead of raising, so ``close()`` reports every
    problem of the export in one :class:`PackagingError`. ``allow_script_modules=True``
    (torchpkg only) saves ScriptModules with this exporter whatever
    ``_gate_torchscript_serialization`` says; others keep torch.package's gate.
    ``durable`` (torchpkg only; default True) fsyncs a path target before the
    atomic rename, so after a power cut the target is the old file or the whole
    new one; ``durable=False`` keeps the rename (no reader ever sees a partial
    file) but a power cut soon after may leave the new file empty or partial:
    for archives that do not outlive the process (the roundtrip's own).
    """

    def __init__(
        self,
        f: str | os.PathLike[str] | BinaryIO,
        importer: Importer | Sequence[Importer] = sys_importer,
        debug: bool = False,
        *,
        collect_errors: bool = False,
        allow_script_modules: bool = False,
        durable: bool = True,
    ) -> None:
        if isinstance(importer, Importer):
            self.importer: Importer = importer
        elif isinstance(importer, Sequence):
            self.importer = OrderedImporter(*importer)
        else:
            raise TypeError(
                "importer must be an Importer or a sequence of them (e.g. "
                f"(package_importer, sys_importer)), not {type(importer).__name__}"
            )
        self.debug = debug
        self.collect_errors = collect_errors
        self.allow_script_modules = allow_script_modules
        self._target = StagedTarget(f, durable=durable)
        self._writer = ArchiveWriter(self._target.file, self._target.archive_name)
        self._policy = Policy()
        self._resolver = Resolver(self._policy, self.importer, debug)
        self._problems: list[Problem] = []
        self._storage_keys: dict[int, tuple[str, Any]] = {}
        self._reduced: dict[int, tuple[Any, ...]] = {}
        self._kinds: dict[type, Kind] = {}
        self._kept: list[Any] = []
        self._unique_ids = itertools.count()
        self._script: _torchscript.ScriptArchive | None = None  # made when a ScriptModule is saved
        self._hooks: dict[Action, dict[int, ActionHook]] = {action: {} for action in Action}
        self._closed = False
        self._environment: EnvironmentRecord | None = None
        self._main = MainModule(self.importer)  # what pickles need from __main__, as source

    # --- policy -------------------------------------------------------------------

    def intern(
        self, include: GlobPattern, *, exclude: GlobPattern = (), allow_empty: bool = True
    ) -> None:
        """Put modules matching ``include`` (and not ``exclude``) into the package."""
        self._policy.add(Action.INTERN, include, exclude, allow_empty)

    def extern(
        self, include: GlobPattern, *, exclude: GlobPattern = (), allow_empty: bool = True
    ) -> None:
        """Leave matching modules to the loading environment."""
        self._policy.add(Action.EXTERN, include, exclude, allow_empty)

    def mock(
        self, include: GlobPattern, *, exclude: GlobPattern = (), allow_empty: bool = True
    ) -> None:
        """Replace matching modules with stubs that import fine and fail when used."""
        self._policy.add(Action.MOCK, include, exclude, allow_empty)

    def deny(self, include: GlobPattern, *, exclude: GlobPattern = ()) -> None:
        """Make depending on matching modules an error."""
        self._policy.add(Action.DENY, include, exclude, allow_empty=True)

    def fallback(self, decide: Callable[[str], Action | None] | None) -> None:
        """Decide modules that no ``intern``/``extern``/``mock``/``deny`` rule matches.

        ``decide(module_name)`` returns an :class:`Action`, or None to leave the
        module undeclared (an error at ``close()``). ``ProvenancePolicy()`` interns
        the repository's code and externs what is installed. torchpkg only.
        """
        self._policy.fallback = decide

    # --- saving -------------------------------------------------------------------

    def save_pickle(
        self,
        package: str,
        resource: str,
        obj: Any,
        dependencies: bool = True,
        pickle_protocol: int = 3,
    ) -> None:
        """Pickle ``obj`` to ``package/resource``; its classes' modules become dependencies.

        Classes and functions of ``__main__`` (a script's, a notebook's) are packaged
        from their source into the module ``__torchpkg_main__``, which the pickle names.

        What cannot be pickled raises here, the error torch.package raises
        (``pickle.PicklingError``, or the object's ``TypeError``), and nothing is
        written: the export can go on. ``collect_errors=True`` defers it to ``close()``.
        """
        error = pickle_protocol_error(pickle_protocol)
        if error is not None:
            raise error
        path = record_path(package, resource)
        buffer = io.BytesIO()
        pickler = create_pickler(
            buffer,
            pickle_protocol,
            self._persistent_ids(),
            self.importer,
            self._reducers(pickle_protocol),
        )
        node = pickle_node(package, resource)
        try:
            # The memo keeps every object pickled alive anyway; cleared before collection
            # resumes, the temporaries the reductions made are freed, not walked.
            with paused_collection():
                try:
                    pickler.dump(obj)
                finally:
                    pickler.clear_memo()
        except _PICKLING_ERRORS as exc:
            # A class of a script that runpy ran (a test running an example) says
            # `__main__`, which is no longer that script: the pickler cannot find it there.
            main = self._pickle_from_main(obj, pickle_protocol) if "__main__" in str(exc) else None
            if main is None:
                self._raise_or_collect(pickling_problem(node, obj, exc), as_pickler_error(exc))
                return
            buffer = main
        # Released on the way out: a frame kept by some caught error's traceback must
        # not keep the buffer exported (its BytesIO then cannot be freed).
        with buffer.getbuffer() as data:
            from_main = names_main(data)
        if from_main:
            buffer = self._pickle_from_main(obj, pickle_protocol) or buffer
        with buffer.getbuffer() as data, paused_collection():
            found = scan_globals_fast(data) if dependencies or may_name_mangled(data) else []
        if pickle_protocol < 3:
            found = [python3_name(module, name) for module, name in found]
        # The C pickler names a class loaded by one of our importers by its mangled
        # module (those are in sys.modules); torch.package's pickler fails on it.
        foreign = [(module, name) for module, name in found if is_mangled(module)]
        if foreign:
            module, name = foreign[0]
            hint = mangled_name_hint(module)
            self._raise_or_collect(
                Problem(PackagingErrorReason.FROM_ANOTHER_PACKAGE, module, hint),
                pickle.PicklingError(f"Can't pickle {module}.{name}: {hint}"),
            )
            return
        if dependencies:
            self._resolver.record_pickle_globals(package, resource, found)
        with buffer.getbuffer() as data:
            self._writer.write_record(path, data)

    def _pickle_from_main(self, obj: Any, protocol: int) -> io.BytesIO | None:
        """Pickle ``obj`` naming its objects of ``__main__`` as the packaged module's, and
        package them: a loading process has a ``__main__`` of its own. None where this
        pickles nothing of ``__main__`` or fails too. What has no source is a problem for
        close(), as a dependency's would be."""
        buffer = io.BytesIO()
        renamer = MainRenamer(self.importer)
        reducers = self._reducers(protocol)
        try:
            create_pickler(buffer, protocol, self._persistent_ids(), renamer, reducers).dump(obj)
        except _PICKLING_ERRORS:
            return None
        if not renamer.found:
            return None
        self._problems.extend(self._main.add(renamer.found))
        self._resolver.provide(MAIN_MODULE, self._main.source(), False, True)
        return buffer

    def _raise_or_collect(self, problem: Problem, error: BaseException) -> None:
        """Raise ``error`` with torchpkg's advice in its notes, or keep ``problem`` for close()."""
        if self.collect_errors:
            self._problems.append(problem)
            return
        add_note(error, f"Next ({problem.reason.name}): {problem.reason.next_step}")
        raise error

    def save_text(self, package: str, resource: str, text: str) -> None:
        """Save ``text`` (utf-8) to ``package/resource``."""
        self.save_binary(package, resource, text.encode("utf-8"))

    def save_binary(self, package: str, resource: str, binary: bytes) -> None:
        """Save raw bytes to ``package/resource``."""
        self._writer.write_record(record_path(package, resource), binary)

    def save_module(self, module_name: str, dependencies: bool = True) -> None:
        """Put ``module_name``'s source into the package, whatever the patterns say.

        A module that does not exist raises ``ModuleNotFoundError`` here, as in
        torch.package; ``collect_errors=True`` defers it to ``close()``.
        """
        if not isinstance(module_name, str):
            raise TypeError(
                f"save_module() takes a module name (str), not {type(module_name).__name__}"
            )
        try:
            self._resolver.intern_from_environment(module_name, dependencies)
        except ModuleNotFoundError as error:
            problem = Problem(PackagingErrorReason.MODULE_NOT_FOUND, module_name)
            self._raise_or_collect(problem, error)

    def save_source_string(
        self,
        module_name: str,
        src: str,
        is_package: bool = False,
        dependencies: bool = True,
    ) -> None:
        """Package ``src`` as the source of ``module_name``."""
        self._resolver.provide(module_name, src, is_package, dependencies)

    def save_source_file(
        self, module_name: str, file_or_directory: str | os.PathLike[str], dependencies: bool = True
    ) -> None:
        """Package a source file as ``module_name``, or a directory as a package tree."""
        path = Path(file_or_directory)
        if not path.is_dir():
            self.save_source_string(module_name, path.read_text("utf-8"), False, dependencies)
            return
        for file in sorted(path.rglob("*.py")):
            parts = list(file.relative_to(path).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join([module_name, *parts])
            self.save_source_string(name, file.read_text("utf-8"), is_package, dependencies)

    def add_dependency(self, module_name: str, dependencies: bool = True) -> None:
        """Resolve ``module_name`` by the patterns as if some saved code imported it."""
        del dependencies  # kept for torch.package's signature: interned code is always scanned
        self._resolver.require(module_name)

    def get_unique_id(self) -> str:
        """An id unique within this export, for ``__reduce_package__`` resources."""
        return str(next(self._unique_ids))

    @property
    def script_module_serializer(self) -> Any:
        """torch's ScriptModuleSerializer; ``ScriptModule.__reduce_package__`` writes to it."""
        return self._script_archive().serializer

    @property
    def storage_context(self) -> Any:
        """The storage numbering shared with TorchScript, as in torch.package."""
        return self._script_archive().storage_context

    def _script_archive(self) -> _torchscript.ScriptArchive:
        if self._script is None:
            self._script = _torchscript.ScriptArchive(self._storage_keys.values())
        return self._script

    # --- hooks --------------------------------------------------------------------

    def register_extern_hook(self, hook: ActionHook) -> RemovableHandle:
        """Call ``hook(exporter, module_name)`` for each extern module at close()."""
        return self._register(Action.EXTERN, hook)

    def register_mock_hook(self, hook: ActionHook) -> RemovableHandle:
        """Call ``hook(exporter, module_name)`` for each mocked module at close()."""
        return self._register(Action.MOCK, hook)

    def register_intern_hook(self, hook: ActionHook) -> RemovableHandle:
        """Call ``hook(exporter, module_name)`` for each interned module at close()."""
        return self._register(Action.INTERN, hook)

    def _register(self, action: Action, hook: ActionHook) -> RemovableHandle:
        handle = RemovableHandle(self._hooks[action])
        self._hooks[action][handle.id] = hook
        return handle

    # --- graph queries ------------------------------------------------------------

    def _modules_with(self, action: Action) -> list[str]:
        return [
            node.name
            for node in self._resolver.graph.nodes.values()
            if node.action is action and not node.is_pickle
        ]

    def externed_modules(self) -> list[str]:
        return self._modules_with(Action.EXTERN)

    def interned_modules(self) -> list[str]:
        return self._modules_with(Action.INTERN)

    def mocked_modules(self) -> list[str]:
        return self._modules_with(Action.MOCK)

    def denied_modules(self) -> list[str]:
        return self._modules_with(Action.DENY)

    def missing_modules(self) -> list[str]:
        """Modules some packaged source imports but this environment lacks (not an error)."""
        return [node.name for node in self._resolver.missing()]

    def get_rdeps(self, module_name: str) -> list[str]:
        """The modules (and pickles) that depend on ``module_name`` directly."""
        return self._resolver.graph.dependents(module_name)

    @property
    def dependency_graph(self) -> DependencyGraph:
        """Every module and pickle seen so far and what each needs, as in torch.package."""
        return self._resolver.graph

    def environment(self) -> EnvironmentRecord | None:
        """The environment record the package holds (None until ``close()`` wrote it)."""
        return self._environment

    def dependency_graph_string(self) -> str:
        """The dependency graph in DOT."""
        return self._resolver.graph.to_dot()

    def all_paths(self, src: str, dst: str) -> str:
        """DOT of every dependency path from ``src`` to ``dst``."""
        return self._resolver.graph.all_paths(src, dst)

    # --- pickling internals -------------------------------------------------------

    def _reducers(self, protocol: int) -> dict[type, Callable[[Any], Any]] | None:
        torch = torch_if_loaded()
        return None if torch is None else _tensors.tensor_reducers(torch, protocol)

    def _persistent_ids(self) -> Callable[[Any], Any]:
        """The pickler's hook. It runs for every object pickled (tens of thousands for
        big models): the kind of each type is decided once, and the common case is a
        dict lookup on locals."""
        kinds, plain, special = self._kinds, Kind.PLAIN, self._persistent_id

        def persistent_id(obj: Any) -> Any:
            kind = kinds.get(type(obj))
            return None if kind is plain else special(obj, kind)

        return persistent_id

    def _persistent_id(self, obj: Any, kind: Kind | None) -> Any:
        if kind is None:
            kind = self._kinds[type(obj)] = classify(type(obj))
            if kind is Kind.PLAIN:
                return None
        if kind is Kind.STORAGE:
            ref = _tensors.describe_storage(obj, torch_if_loaded())
            assert ref is not None
            key = self._storage_key(ref)
            return ("storage", ref.storage_type, key, ref.location, ref.numel)
        reduced = self._reduced.get(id(obj))
        if reduced is None:
            if (
                _gate_torchscript_serialization
                and not self.allow_script_modules
                and _torchscript.is_script_module(obj)
            ):
                raise RuntimeError(_torchscript.GATE_MESSAGE)
            reduce_package = getattr(type(obj), "__reduce_package__", None) or _exported.reducer(
                obj
            )
            assert reduce_package is not None
            # Keep obj alive so its id() is not reused by another object in this export.
            reduced = self._reduced[id(obj)] = (
                "reduce_package",
                id(obj),
                *reduce_package(obj, self),
            )
            self._kept.append(obj)
        return reduced

    def _storage_key(self, ref: _tensors.StorageRef) -> str:
        cdata = ref.untyped._cdata
        known = self._storage_keys.get(cdata)
        if known is not None:
            return known[0]
        # Once a ScriptModule is saved, keys come from the numbering TorchScript shares.
        script = self._script
        key = str(len(self._storage_keys)) if script is None else script.storage_key(ref.untyped)
        self._storage_keys[cdata] = (key, ref.untyped)
        self._writer.write_record(f".data/{key}.storage", _tensors.storage_bytes(ref.untyped))
        return key

    # --- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Check every dependency, raise all problems at once, or write the package."""
        if self._closed:
            return
        self._closed = True
        try:
            self._check()
            self._write_modules()
            if self._script is not None:
                self._script.copy_into(self._writer)
            self._environment = write_framework_records(
                self._writer,
                self.externed_modules(),
                self.interned_modules(),
                self._resolver.source_map(),
            )
            self._writer.write_manifest()  # the digests of every record above
            self._writer.write_serialization_id()
            self._writer.close()
            self._target.commit()
        except BaseException:
            self._target.discard()
            raise
        finally:
            if self._script is not None:
                self._script.close()
                self._script = None
            self._storage_keys.clear()
            self._reduced.clear()
            self._kept.clear()

    def __enter__(self) -> PackageExporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._closed = True
            self._target.discard()
            return
        self.close()

    def _check(self) -> None:
        problems = [*self._problems, *self._resolver.problems()]
        empty = [
            Problem(PackagingErrorReason.EMPTY_MATCH, rule.describe(), rule.given)
            for rule in self._policy.unmatched_required()
        ]
        if problems:
            # As in torch.package, the patterns wait until nothing else fails; they are
            # kept in ``problems`` (and the notes) all the same.
            raise PackagingError(
                [*problems, *empty], debug=self.debug, dependency_graph=self._resolver.graph
            )
        if empty:
            raise EmptyMatchError(empty, debug=self.debug, dependency_graph=self._resolver.graph)
        if self.debug:
            for name in self.missing_modules():
                logger.warning(
                    "torchpkg: %s is imported by %s but not installed here; the package "
                    "will not provide it.",
                    name,
                    ", ".join(self.get_rdeps(name)),
                )

    def _write_modules(self) -> None:
        for node in list(self._resolver.graph.nodes.values()):
            if node.is_pickle or not node.found:
                continue
            if node.action is not None:
                for hook in list(self._hooks[node.action].values()):
                    hook(self, node.name)
            write_module(self._writer, node)
