"""Module -> action -> dependencies, recording every problem on the graph.

Nothing here raises for a user's mistake: problems are recorded on nodes and
the exporter raises them together at ``close()``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from torchpkg._graph import DependencyGraph, ModuleNode
from torchpkg._mock import MOCK_MODULE
from torchpkg._paths import module_path
from torchpkg._scan_cache import scan_cache
from torchpkg._source_scan import ImportRef
from torchpkg.environment import Importer, ModuleSource, SourceStatus, mangled_name_hint
from torchpkg.errors import PackagingErrorReason, Problem
from torchpkg.mangling import demangle, is_mangled
from torchpkg.policy import Action, Policy, is_implicitly_extern
from torchpkg.records import SourceMap

__all__ = ["Resolver", "pickle_node"]

_SOURCE_PROBLEMS = {
    SourceStatus.EXTENSION: PackagingErrorReason.IS_EXTENSION_MODULE,
    SourceStatus.NO_FILE: PackagingErrorReason.NO_DUNDER_FILE,
    SourceStatus.FILE_MISSING: PackagingErrorReason.SOURCE_FILE_NOT_FOUND,
    SourceStatus.NOT_FOUND: PackagingErrorReason.MODULE_NOT_FOUND,
}

# The module packaged code imports to reach its own PackageImporter.
IMPORTER_MODULE = "torch_package_importer"


@dataclass(frozen=True)
class _Request:
    module: str
    src: str | None
    required: bool  # False for imports the source can live without (not found is fine)


def _is_lazy(module: ModuleType) -> bool:
    """A module that makes attributes on demand (PEP 562 or a ModuleType subclass)."""
    return type(module) is not ModuleType or "__getattr__" in vars(module)


class Resolver:
    """Decides what each module becomes and follows the imports of interned ones."""

    def __init__(self, policy: Policy, importer: Importer, debug: bool = False) -> None:
        self.policy = policy
        self.importer = importer
        self.debug = debug
        self.graph = DependencyGraph()
        self._sources: dict[str, ModuleSource] = {}
        self._exists: Callable[[str], bool] = self._module_exists
        self._children: dict[str, list[str]] = {}  # lazy package -> its loaded submodules
        self._scans = scan_cache()  # parses each source once, across exports and processes

    # --- entry points -------------------------------------------------------------

    def require(self, module: str, src: str | None = None) -> None:
        """``module`` must be resolvable (a pickle or the user names it)."""
        self._run([_Request(module, src, required=True)])

    def provide(self, module: str, source: str, is_package: bool, dependencies: bool) -> None:
        """Source given by the user: interned whatever the rules say."""
        node = self.graph.node(module)
        node.action, node.provided, node.is_package, node.source = (
            Action.INTERN,
            True,
            is_package,
            source,
        )
        # Saved code may have imported it before its source was given.
        node.found, node.problem = True, None
        if dependencies:
            self._run(self._imports_of(node))

    def intern_from_environment(self, module: str, dependencies: bool) -> None:
        """``save_module``: intern ``module`` from the importer, whatever the rules say.

        A module the importer does not have is a ``ModuleNotFoundError`` and leaves
        the graph as it was, as torch.package's failed import does.
        """
        found = self._source(module)
        if found.status is SourceStatus.NOT_FOUND:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        node = self.graph.node(module)
        if found.status is not SourceStatus.OK:
            self._source_problem(node, found)
            return
        self.provide(module, found.source or "", found.is_package, dependencies)

    def record_pickle_globals(
        self, package: str, resource: str, globals_: list[tuple[str, str]]
    ) -> None:
        resource_node = pickle_node(package, resource)
        node = self.graph.node(resource_node)
        node.is_pickle, node.action, node.provided = True, Action.INTERN, True
        # A model names the same few modules thousands of times: each is resolved once.
        modules = dict.fromkeys(module for module, _ in globals_)
        self._run([_Request(module, resource_node, True) for module in modules])
        mocked: dict[str, list[str]] = {}
        for module, name in globals_:
            target = self.graph.nodes.get(module)
            if target is not None and target.action is Action.MOCK:
                mocked.setdefault(module, []).append(name)
        for module, names in mocked.items():
            context = (
                f"Object(s) '{names}' from module `{module}` was mocked out during packaging "
                f"but is being used in resource - `{resource}` in package `{package}`. "
            )
            self._fail(
                self.graph.nodes[module], PackagingErrorReason.MOCKED_BUT_STILL_USED, context
            )

    def source_map(self) -> SourceMap:
        """Each interned module's record -> the local file its source was read from."""
        files = {}
        for node in self.graph.nodes.values():
            found = self._sources.get(node.name)
            if (
                node.action is Action.INTERN
                and node.source is not None
                and found is not None
                and found.source == node.source
                and found.filename
                and os.path.isabs(found.filename)
            ):
                digest = SourceMap.digest(node.source.encode("utf-8"))
                files[module_path(node.name, node.is_package)] = (found.filename, digest)
        return SourceMap(files)

    def problems(self) -> list[Problem]:
        return [node.problem for node in self.graph.nodes.values() if node.problem is not None]

    def missing(self) -> list[ModuleNode]:
        """Modules some source imports but the environment lacks (optional imports)."""
        return [node for node in self.graph.nodes.values() if not node.found and not node.problem]

    # --- the work -----------------------------------------------------------------

    def _run(self, requests: list[_Request]) -> None:
        queue = deque(requests)
        while queue:
            request = queue.popleft()
            queue.extend(self._resolve(request))
        self._scans.flush()  # what this resolution parsed, for the next processes

    def _resolve(self, request: _Request) -> list[_Request]:
        name = request.module
        if name == IMPORTER_MODULE:
            return []
        seen = name in self.graph.nodes
        node = self.graph.node(name)
        if request.src is not None:
            self.graph.add_edge(request.src, name)
        if seen:
            if request.required and not node.found and node.problem is None:
                self._not_found(node)
            return []
        if name == MOCK_MODULE:
            # The mock support of a package being re-exported (its mocked modules'
            # stubs import it): written once, as a new mock would write it.
            node.mock_support = True
            return []
        if is_mangled(name):
            self._fail(node, PackagingErrorReason.FROM_ANOTHER_PACKAGE, mangled_name_hint(name))
            return []
        if is_implicitly_extern(name):
            node.action, node.implicit = Action.EXTERN, True
            return []
        if not self._exists(name):
            node.found = False
            if request.required:
                self._not_found(node)
            return []
        action, rule = self.policy.decide(name)
        if action is None:
            self._fail(node, PackagingErrorReason.NO_ACTION)
            return []
        node.action = action
        if action is Action.DENY:
            by = rule.describe() if rule is not None else "the fallback policy"
            self._fail(node, PackagingErrorReason.DENIED, detail=f"denied by {by}")
        elif action is Action.MOCK:
            node.is_package = self._source(name).is_package
        elif action is Action.INTERN:
            found = self._source(name)
            if found.status is not SourceStatus.OK:
                self._source_problem(node, found)
                return []
            node.source, node.is_package = found.source, found.is_package
            return self._imports_of(node)
        return []

    def _imports_of(self, node: ModuleNode) -> list[_Request]:
        if node.source is None:
            return []
        try:
            refs = self._scans.imports(node.source, node.name, node.is_package)
        except (SyntaxError, ValueError) as error:
            self._fail(
                node,
                PackagingErrorReason.DEPENDENCY_RESOLUTION_FAILED,
                _scan_error_context(error),
                str(error),
            )
            return []
        # A lazy package hands out submodules by attribute (`getattr(auto, "x_auto")`),
        # which no import shows: the ones it had imported here go in too.
        requests = [
            _Request(child, node.name, required=False) for child in self._lazy_children(node.name)
        ]
        for ref in refs:
            requests.extend(
                _Request(module, node.name, required=False)
                for module in self._targets(ref, node.name)
            )
        return requests

    def _targets(self, ref: ImportRef, importing: str) -> list[str]:
        """``from a import b``: ``a.b`` when it is a module, else ``a`` itself.

        When ``a`` is a lazy package (transformers', diffusers'), also the modules
        it would import to hand out ``b``, which no import statement shows.
        """
        submodules: list[str] = []
        attributes = False
        for name in ref.names:
            target = f"{ref.module}.{name}"
            if self._exists(target):
                submodules.append(target)
            else:
                attributes = True
                submodules.extend(self._lazy_sources(ref.module, name, importing))
        if attributes or not ref.names:
            submodules.append(ref.module)
        return submodules

    def _lazy_sources(self, package: str, name: str, importing: str) -> list[str]:
        """Where the loaded lazy ``package`` gets ``name``; its ``__getattr__`` never runs."""
        modules = self.importer.modules
        loaded = modules.get(package)
        if loaded is None or not _is_lazy(loaded):
            return []
        sources: list[str] = []
        # The Hugging Face convention: `_class_to_module` maps names to submodules.
        table = vars(loaded).get("_class_to_module")
        if isinstance(table, dict) and isinstance(table.get(name), str):
            sources.append(f"{package}.{table[name]}")
        value = vars(loaded).get(name, vars(modules.get(importing) or loaded).get(name))
        if value is None:
            return sources
        # The submodules that hold it: the one the lazy table names re-exports it.
        sources.extend(
            child
            for child in self._lazy_children(package)
            if vars(modules.get(child) or ModuleType(child)).get(name) is value
        )
        origin = getattr(value, "__module__", None)
        if isinstance(origin, str) and not isinstance(value, ModuleType):
            origin = demangle(origin)
            if origin.partition(".")[0] == package.partition(".")[0]:
                sources.append(origin)
        return [source for source in sources if source != package]

    def _lazy_children(self, package: str) -> list[str]:
        """The loaded submodules of ``package`` when it is a loaded lazy package."""
        children = self._children.get(package)
        if children is None:
            loaded = self.importer.modules.get(package)
            prefix = package + "."
            children = self._children[package] = (
                [
                    child
                    for child in list(self.importer.modules)
                    if child.startswith(prefix) and "." not in child[len(prefix) :]
                ]
                if loaded is not None and _is_lazy(loaded)
                else []
            )
        return children

    # --- helpers ------------------------------------------------------------------

    def _source(self, name: str) -> ModuleSource:
        found = self._sources.get(name)
        if found is None:
            found = self._sources[name] = self.importer.module_source(name)
        return found

    def _module_exists(self, name: str) -> bool:
        if name in self.graph.nodes and self.graph.nodes[name].provided:
            return True
        return self._source(name).status is not SourceStatus.NOT_FOUND

    def _not_found(self, node: ModuleNode) -> None:
        self._fail(node, PackagingErrorReason.MODULE_NOT_FOUND)

    def _source_problem(self, node: ModuleNode, found: ModuleSource) -> None:
        reason = _SOURCE_PROBLEMS[found.status]
        # torch.package gives the file as context for a missing source file only.
        if reason is PackagingErrorReason.SOURCE_FILE_NOT_FOUND:
            self._fail(node, reason, f"filename: {found.filename}")
        else:
            loaded = f"loaded from {found.filename}" if found.filename else None
            self._fail(node, reason, detail=loaded)

    def _fail(
        self,
        node: ModuleNode,
        reason: PackagingErrorReason,
        context: str | None = None,
        detail: str | None = None,
    ) -> None:
        chain = self.graph.chain_to(node.name) if self.debug else ()
        node.problem = Problem(reason, node.name, context, chain, detail)


def pickle_node(package: str, resource: str) -> str:
    """The graph node of a pickle saved at ``package/resource``, named as torch.package names it."""
    return f"<{package}.{resource}>"


# importlib's words, which torch.package reports; the scan's own say where, in the notes.
_BEYOND_TOP_LEVEL = "attempted relative import beyond top-level package"


def _scan_error_context(error: SyntaxError | ValueError) -> str:
    """The scan's error as torch.package words it: ``ast.parse``'s with no file name,
    or importlib's for the scan's one ``ValueError``, a relative import beyond the
    top-level package."""
    if not isinstance(error, SyntaxError):
        return _BEYOND_TOP_LEVEL
    cause = error.__cause__ if isinstance(error.__cause__, ValueError) else error
    if not isinstance(cause, SyntaxError):
        return str(cause)
    return str(SyntaxError(cause.msg, ("<unknown>", cause.lineno, cause.offset, cause.text)))
