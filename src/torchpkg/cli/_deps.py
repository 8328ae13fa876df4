"""``deps``: the import graph of a package, or of an installed module, read from source.

Nothing is imported or run: a package's graph comes from its packaged sources
and the globals its pickles name; a module's from its source file and those of
the modules of its own top-level package (everything else is a leaf).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from torchpkg._archive_reader import ArchiveReader
from torchpkg._module_tree import ModuleNode
from torchpkg._pickle_scan import scan_references
from torchpkg._source_scan import ImportRef, scan_imports
from torchpkg.cli._common import (
    FINDINGS,
    OK,
    CommandError,
    emit_json,
    extern_modules,
    is_module_name,
    modules_of_this_folder,
    open_package,
    packaged_modules,
    pickle_records,
)
from torchpkg.environment import SourceStatus, find_spec_without_running, sys_importer
from torchpkg.pickling import python3_name

__all__ = ["Graph", "ImportGraph", "module_graph", "package_graph", "run_deps"]

_MAX_CHAINS = 20
_MAX_STEPS = 200_000  # bounds the search for chains in graphs with many paths


@dataclass
class ImportGraph:
    """Who imports whom; nodes and edges keep the order they were first seen in."""

    _succ: dict[str, dict[str, None]] = field(default_factory=dict)
    _pred: dict[str, dict[str, None]] = field(default_factory=dict)

    def add_node(self, name: str) -> None:
        self._succ.setdefault(name, {})
        self._pred.setdefault(name, {})

    def add_edge(self, importer: str, imported: str) -> None:
        self.add_node(importer)
        self.add_node(imported)
        self._succ[importer][imported] = None
        self._pred[imported][importer] = None

    def __iter__(self) -> Iterator[str]:
        return iter(self._succ)

    def __contains__(self, name: object) -> bool:
        return name in self._succ

    def successors(self, name: str) -> list[str]:
        return list(self._succ.get(name, ()))

    def predecessors(self, name: str) -> list[str]:
        return list(self._pred.get(name, ()))

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(u, v) for u, imported in self._succ.items() for v in imported]

    def to_dot(self) -> str:
        """Graphviz DOT, in the shape torch.package's ``to_dot`` writes."""
        lines = "\n".join(f'"{u}" -> "{v}";' for u, v in self.edges)
        return f"digraph G {{\nrankdir = LR;\nnode [shape=box];\n{lines}\n}}\n"


@dataclass
class Graph:
    """Who imports whom, and what each node is (packaged, extern, pickle, ...)."""

    target: str
    graph: ImportGraph = field(default_factory=ImportGraph)
    kinds: dict[str, str] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, name: str, kind: str) -> None:
        self.graph.add_node(name)
        self.kinds.setdefault(name, kind)

    def chains_to(self, module: str) -> list[list[str]]:
        """Import chains from a root to ``module``, shortest first (at most 20)."""
        chains: list[list[str]] = []
        steps = 0
        # Walk back from the module along importers, keeping each path free of cycles.
        stack = [[module]]
        while stack and steps < _MAX_STEPS:
            path = stack.pop()
            steps += 1
            importers = [n for n in self.graph.predecessors(path[-1]) if n not in path]
            if path[-1] in self.roots or not importers:
                if len(path) > 1 or path[-1] in self.roots:
                    chains.append(path[::-1])
                continue
            stack.extend([*path, importer] for importer in reversed(importers))
        chains.sort(key=len)
        return chains[:_MAX_CHAINS]


def _target(ref: ImportRef, exists: set[str] | None, known: ModuleNode | None) -> list[str]:
    """``from a import b``: ``a.b`` when it is a module, else ``a``."""
    targets = []
    for name in ref.names:
        candidate = f"{ref.module}.{name}"
        if (known is not None and _packaged(known, candidate)) or (
            exists is not None and candidate in exists
        ):
            targets.append(candidate)
    return targets or [ref.module]


def _packaged(root: ModuleNode, name: str) -> bool:
    node = root.find(name)
    return node is not None and not node.extern


def package_graph(reader: ArchiveReader, name: str) -> Graph:
    externs = extern_modules(reader)
    root = ModuleNode.from_archive(reader.records(), externs)
    result = Graph(name)
    for module in packaged_modules(reader):
        result.add(module.name, "mocked" if module.mocked else "packaged")
        if module.mocked:
            continue
        try:
            refs = scan_imports(reader.read(module.record), module.name, module.is_package)
        except (SyntaxError, ValueError) as error:
            result.problems.append(f"{module.name}: its source cannot be read ({error})")
            continue
        for ref in refs:
            for target in _target(ref, None, root):
                result.add(target, _kind(root, target))
                result.graph.add_edge(module.name, target)
    for record in pickle_records(reader):
        result.add(record, "pickle")
        result.roots.append(record)
        try:
            references = scan_references(reader.read(record))
        except ValueError as error:
            result.problems.append(f"{record}: {error}")
            continue
        for reference in references:
            if reference.module is not None and reference.name is not None:
                module_name = python3_name(reference.module, reference.name)[0]
                result.add(module_name, _kind(root, module_name))
                result.graph.add_edge(record, module_name)
    if not result.roots:  # no pickles: what nothing else imports is where chains start
        result.roots = [n for n in result.graph if not result.graph.predecessors(n)]
    return result


def _kind(root: ModuleNode, name: str) -> str:
    node = root.find(name)
    if node is None:
        return "missing"
    return "extern" if node.extern else "packaged"


def module_graph(module: str) -> Graph:
    """The graph of an installed module and of its own top-level package's modules."""
    if not is_module_name(module):
        raise CommandError(
            f"{module!r} is neither a package file nor a module name; pass a path to a .pt "
            "file or folder, or a dotted module name such as mypkg.models"
        )
    if find_spec_without_running(module) is None:
        raise CommandError(
            f"no module named {module!r} is importable from here; run from the folder that "
            "holds it, or install it"
        )
    top = module.partition(".")[0]
    result = Graph(module, roots=[module])
    result.add(module, "module")
    queue = deque([module])
    expanded: set[str] = set()
    while queue:
        name = queue.popleft()
        if name in expanded:
            continue
        expanded.add(name)
        found = sys_importer.module_source(name)
        if found.status is not SourceStatus.OK or found.source is None:
            result.kinds[name] = "no source"
            continue
        try:
            refs = scan_imports(found.source, name, found.is_package)
        except (SyntaxError, ValueError) as error:
            result.problems.append(f"{name}: its source cannot be read ({error})")
            continue
        for ref in refs:
            exists = {f"{ref.module}.{n}" for n in ref.names if _exists(f"{ref.module}.{n}")}
            for target in _target(ref, exists, None):
                inside = target.partition(".")[0] == top
                result.add(target, "module" if inside else "outside")
                if not _exists(target):
                    result.kinds[target] = "missing"
                result.graph.add_edge(name, target)
                if inside and target not in expanded:
                    queue.append(target)
    return result


def _exists(module: str) -> bool:
    try:
        return find_spec_without_running(module) is not None
    except (ImportError, ValueError):
        return False


def _restricted(chains: list[list[str]]) -> ImportGraph:
    graph = ImportGraph()
    for chain in chains:
        for importer, imported in itertools.pairwise(chain):
            graph.add_edge(importer, imported)
    return graph


def _svg(dot: str) -> str:
    program = shutil.which("dot")
    if program is None:
        raise CommandError(
            "--svg needs Graphviz's `dot` on PATH, and it is not there; install Graphviz "
            "(apt install graphviz, brew install graphviz), or use --dot and render elsewhere"
        )
    done = subprocess.run(
        [program, "-Tsvg"], input=dot, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise CommandError(f"Graphviz's dot failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def run_deps(args: argparse.Namespace) -> int:
    if os.path.exists(args.target):
        with open_package(args.target) as reader:
            result = package_graph(reader, args.target)
    else:
        with modules_of_this_folder():
            result = module_graph(args.target)
    chains = None
    if args.why is not None:
        chains = result.chains_to(args.why) if args.why in result.graph else []
    graph = _restricted(chains) if chains is not None else result.graph
    if args.json:
        emit_json(
            {
                "target": result.target,
                "nodes": [{"name": n, "kind": result.kinds.get(n, "module")} for n in graph],
                "edges": [list(edge) for edge in graph.edges],
                "why": chains,
                "problems": result.problems,
            }
        )
    elif args.dot or args.svg:
        dot = graph.to_dot()
        print(_svg(dot) if args.svg else dot, end="")
    elif chains is not None:
        for chain in chains:
            print(" -> ".join(chain))
        if not chains:
            print(f"no import chain of {result.target} leads to {args.why}")
    else:
        for name in graph:
            imported = graph.successors(name)
            if imported:
                print(f"{name} -> {', '.join(imported)}")
    for problem in result.problems:
        print(f"torchpkg: {problem}", file=sys.stderr)
    return FINDINGS if chains == [] else OK
