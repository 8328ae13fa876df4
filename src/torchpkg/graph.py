"""A small directed graph with torch.package's ``DiGraph`` interface.

Nodes are any hashable values, kept in the order they were first added, each
with a dict of attributes; an edge ``u -> v`` reads "``u`` depends on ``v``".
The exporter's dependency graph is one of these, so what works on a graph
built by hand works on ``PackageExporter.dependency_graph`` too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

__all__ = ["DiGraph"]


class DiGraph:
    """A directed graph: ``add_node`` / ``add_edge`` to build it, then query it.

    ``successors``, ``predecessors``, the transitive closures and ``first_path``
    raise ``ValueError`` for a node that is not in the graph.
    """

    def __init__(self) -> None:
        # node -> its attributes (a subclass may keep a richer record that reads
        # as the attribute mapping: the exporter's graph does)
        self._nodes: dict[Any, Any] = {}
        self._succ: dict[Any, dict[Any, None]] = {}
        self._pred: dict[Any, dict[Any, None]] = {}

    def add_node(self, n: Hashable, **attributes: Any) -> None:
        """Add ``n`` if it is new; either way, set the given attributes on it."""
        if n not in self._nodes:
            self._nodes[n] = self._new_node(n)
            self._succ[n] = {}
            self._pred[n] = {}
        self._nodes[n].update(attributes)

    def add_edge(self, u: Hashable, v: Hashable) -> None:
        """``u`` depends on ``v``; both become nodes if they are new."""
        self.add_node(u)
        self.add_node(v)
        self._succ[u][v] = None
        self._pred[v][u] = None

    @property
    def nodes(self) -> Mapping[Any, Mapping[str, Any]]:
        """Every node, in the order it was first added, to its attributes."""
        return self._nodes

    @property
    def edges(self) -> Iterator[tuple[Any, Any]]:
        """Every edge ``(u, v)``, grouped by ``u`` in node order."""
        return ((u, v) for u, successors in self._succ.items() for v in successors)

    def successors(self, n: Hashable) -> Iterator[Any]:
        """What ``n`` depends on."""
        return iter(self._adjacent(self._succ, n))

    def predecessors(self, n: Hashable) -> Iterator[Any]:
        """What depends on ``n``."""
        return iter(self._adjacent(self._pred, n))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._nodes)

    def __contains__(self, n: object) -> bool:
        try:
            return n in self._nodes
        except TypeError:  # unhashable: cannot be a node
            return False

    def __len__(self) -> int:
        return len(self._nodes)

    def forward_transitive_closure(self, src: Hashable) -> set[Any]:
        """``src`` and every node reachable from it.

        torch.package walks from each character of ``src`` (``set(src)``); the
        two agree on one-character names, and this one also works on real ones.
        """
        return self._closure(src, self._succ)

    def backward_transitive_closure(self, src: Hashable) -> set[Any]:
        """``src`` and every node from which it can be reached."""
        return self._closure(src, self._pred)

    def all_paths(self, src: Hashable, dst: Hashable) -> str:
        """DOT of the subgraph of every path from ``src`` to ``dst``.

        Built walking back from ``dst``, so its edges come in the order
        torch.package writes them. With no path the graph is empty; torch.package
        then returns a graph object instead of a string.
        """
        reachable = self.forward_transitive_closure(src)
        on_path = DiGraph()
        if dst not in reachable:
            return on_path.to_dot()
        seen = {dst}
        queue = deque([dst])
        while queue:
            current = queue.popleft()
            for dependent in self.predecessors(current):
                if dependent in reachable:
                    on_path.add_edge(dependent, current)
                    if dependent not in seen:
                        seen.add(dependent)
                        queue.append(dependent)
        return on_path.to_dot()

    def first_path(self, dst: Hashable) -> list[Any]:
        """The path by which ``dst`` was first reached: at each step back, the
        dependent added first, up to a node nothing depends on (or a cycle)."""
        self._adjacent(self._pred, dst)  # ValueError if dst is not a node
        path = [dst]
        seen = {dst}
        order = {name: index for index, name in enumerate(self._nodes)}
        current = dst
        while True:
            dependents = [p for p in self._pred[current] if p not in seen]
            if not dependents:
                break
            current = min(dependents, key=order.__getitem__)
            path.append(current)
            seen.add(current)
        path.reverse()
        return path

    def to_dot(self) -> str:
        """The graph in DOT, as torch.package writes it."""
        lines = "\n".join(f'"{u}" -> "{v}";' for u, v in self.edges)
        return f"digraph G {{\nrankdir = LR;\nnode [shape=box];\n{lines}\n}}\n"

    def _new_node(self, n: Hashable) -> Any:
        """What is kept for a new node ``n``: its attributes; anything with ``update``."""
        return {}

    @staticmethod
    def _adjacent(adjacency: dict[Any, dict[Any, None]], n: Hashable) -> dict[Any, None]:
        try:
            return adjacency[n]
        except (KeyError, TypeError):
            # torch.package's words, so code that matches them keeps working
            raise ValueError(f"The node {n} is not in the digraph.") from None

    def _closure(self, start: Hashable, adjacency: dict[Any, dict[Any, None]]) -> set[Any]:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in self._adjacent(adjacency, stack.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen
