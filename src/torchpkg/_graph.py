"""The exporter's dependency graph, with torch.package's ``DiGraph`` interface.

Nodes are module names (and ``<package.resource>`` for pickles); an edge
``a -> b`` means ``a`` needs ``b``. The exporter works with the typed fields
of :class:`ModuleNode`; code written against torch.package reads the same
nodes as attribute mappings (``graph.nodes[name].get("error")``) and calls
the same methods (``successors``, ``first_path``, ``to_dot``, ...).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from torchpkg.errors import Problem
from torchpkg.policy import Action

__all__ = ["DependencyGraph", "ModuleNode"]


@dataclass(eq=False)
class ModuleNode(Mapping[str, Any]):
    """One module (or pickle resource, ``<package.resource>``) and what became of it.

    As a mapping it shows torch.package's node attributes: ``action``,
    ``is_pickle``, ``is_package``, ``source``, ``error`` (a
    :class:`PackagingErrorReason`) and ``error_context``, each present only
    when it applies, plus whatever was given to ``add_node``.
    """

    name: str
    action: Action | None = None
    provided: bool = False  # its source was given explicitly (save_module/save_source_*)
    implicit: bool = False  # externed without a rule (torch, the standard library)
    is_pickle: bool = False
    is_package: bool = False
    source: str | None = None
    found: bool = True  # False: imported somewhere but absent from the exporting environment
    problem: Problem | None = None
    # `_mock` reached while re-exporting a package that had mocks: not a module of the
    # user's, so no rule decides it; the mock support record is written in its place.
    mock_support: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)  # given to add_node()

    def _view(self) -> dict[str, Any]:
        view: dict[str, Any] = {}
        if self.action is not None:
            view["action"] = self.action
        if self.is_pickle:
            view["is_pickle"] = True
        if self.action is Action.INTERN and not self.is_pickle:
            view["is_package"] = self.is_package
        if self.source is not None:
            view["source"] = self.source
        if self.problem is not None:
            view["error"] = self.problem.reason
            if self.problem.context is not None:
                view["error_context"] = self.problem.context
        view.update(self.attributes)
        return view

    def __getitem__(self, key: str) -> Any:
        return self._view()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())

    def __bool__(self) -> bool:
        # A node is a node even before anything is known about it.
        return True


class DependencyGraph:
    """A directed graph of modules; nodes keep the order they were first seen in.

    Any hashable works as a node, as in torch.package; the exporter uses strings.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, ModuleNode] = {}
        self._succ: dict[str, dict[str, None]] = {}
        self._pred: dict[str, dict[str, None]] = {}

    # --- torch.package's DiGraph interface ----------------------------------------------

    def add_node(self, n: str, **attributes: Any) -> None:
        """Add ``n`` if it is new; either way, set the given attributes on it."""
        self.node(n).attributes.update(attributes)

    def add_edge(self, u: str, v: str) -> None:
        """``u`` depends on ``v``; both become nodes if they are new."""
        self.node(u)
        self.node(v)
        self._succ[u][v] = None
        self._pred[v][u] = None

    @property
    def nodes(self) -> dict[str, ModuleNode]:
        """Every node, in the order it was first seen, to its attributes."""
        return self._nodes

    @property
    def edges(self) -> Iterator[tuple[str, str]]:
        return ((u, v) for u, successors in self._succ.items() for v in successors)

    def successors(self, n: str) -> Iterator[str]:
        """What ``n`` depends on; ValueError if ``n`` is not a node."""
        return iter(self._adjacent(self._succ, n))

    def predecessors(self, n: str) -> Iterator[str]:
        """What depends on ``n``; ValueError if ``n`` is not a node."""
        return iter(self._adjacent(self._pred, n))

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __contains__(self, n: object) -> bool:
        try:
            return n in self._nodes
        except TypeError:  # unhashable: cannot be a node
            return False

    def __len__(self) -> int:
        return len(self._nodes)

    def forward_transitive_closure(self, src: str) -> set[str]:
        """``src`` and every node reachable from it.

        torch.package walks from each character of ``src`` (``set(src)``); the
        two agree on one-character names, and this one also works on real ones.
        """
        return self._closure(src, self._succ)

    def backward_transitive_closure(self, src: str) -> set[str]:
        """``src`` and every node from which it can be reached."""
        return self._closure(src, self._pred)

    def all_paths(self, src: str, dst: str) -> str:
        """DOT of every edge that lies on some path from ``src`` to ``dst``.

        With no path the graph is empty; torch.package then returns a graph
        object instead of a string.
        """
        on_path = self._closure(src, self._succ)
        if dst not in on_path:
            return self._dot([])
        on_path &= self._closure(dst, self._pred)
        return self._dot([(u, v) for u, v in self.edges if u in on_path and v in on_path])

    def first_path(self, dst: str) -> list[str]:
        """The path by which ``dst`` was first reached: at each step back, the
        dependent that was seen first, up to a node nothing depends on."""
        self._adjacent(self._pred, dst)  # ValueError if dst is not a node
        path = [dst]
        seen = {dst}
        order = {name: index for index, name in enumerate(self._nodes)}
        current = dst
        while True:
            dependents = [p for p in self._pred.get(current, ()) if p not in seen]
            if not dependents:
                break
            current = min(dependents, key=order.__getitem__)
            path.append(current)
            seen.add(current)
        path.reverse()
        return path

    def to_dot(self) -> str:
        """The graph in DOT, as torch.package writes it."""
        return self._dot(self.edges)

    # --- what the exporter asks -----------------------------------------------------------

    def node(self, name: str) -> ModuleNode:
        """The node called ``name``, made if it is new."""
        existing = self._nodes.get(name)
        if existing is None:
            existing = self._nodes[name] = ModuleNode(name)
            self._succ[name] = {}
            self._pred[name] = {}
        return existing

    def dependents(self, name: str) -> list[str]:
        return list(self._pred.get(name, ()))

    def chain_to(self, name: str) -> tuple[str, ...]:
        """A shortest chain from something saved explicitly to ``name``."""
        parents: dict[str, str | None] = {name: None}
        queue = deque([name])
        root = name
        while queue:
            current = queue.popleft()
            preds = self._pred.get(current)
            if not preds:
                root = current
                break
            for pred in preds:
                if pred not in parents:
                    parents[pred] = current
                    queue.append(pred)
        chain = [root]
        step = parents[root]
        while step is not None:
            chain.append(step)
            step = parents[step]
        return tuple(chain)

    # --- helpers ----------------------------------------------------------------------

    def _adjacent(self, adjacency: dict[str, dict[str, None]], n: str) -> dict[str, None]:
        try:
            return adjacency[n]
        except (KeyError, TypeError):
            raise ValueError(f"{n!r} is not in the dependency graph") from None

    def _closure(self, start: str, adjacency: dict[str, dict[str, None]]) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in self._adjacent(adjacency, stack.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    @staticmethod
    def _dot(edges: Iterable[tuple[str, str]]) -> str:
        lines = "\n".join(f'"{u}" -> "{v}";' for u, v in edges)
        return f"digraph G {{\nrankdir = LR;\nnode [shape=box];\n{lines}\n}}\n"
