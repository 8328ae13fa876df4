"""The exporter's dependency graph: typed nodes, edges, why-chains and DOT."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from torchpkg.errors import Problem
from torchpkg.policy import Action

__all__ = ["DependencyGraph", "ModuleNode"]


@dataclass
class ModuleNode:
    """One module (or pickle resource, ``<package.resource>``) and what became of it."""

    name: str
    action: Action | None = None
    provided: bool = False  # its source was given explicitly (save_module/save_source_*)
    implicit: bool = False  # externed without a rule (torch, the standard library)
    is_pickle: bool = False
    is_package: bool = False
    source: str | None = None
    found: bool = True  # False: imported somewhere but absent from the exporting environment
    problem: Problem | None = None


@dataclass
class DependencyGraph:
    nodes: dict[str, ModuleNode] = field(default_factory=dict)
    _edges: dict[str, dict[str, None]] = field(default_factory=dict)
    _rdeps: dict[str, dict[str, None]] = field(default_factory=dict)

    def node(self, name: str) -> ModuleNode:
        existing = self.nodes.get(name)
        if existing is None:
            existing = self.nodes[name] = ModuleNode(name)
        return existing

    def add_edge(self, src: str, dst: str) -> None:
        self._edges.setdefault(src, {})[dst] = None
        self._rdeps.setdefault(dst, {})[src] = None

    def edges(self) -> list[tuple[str, str]]:
        return [(src, dst) for src, dsts in self._edges.items() for dst in dsts]

    def dependents(self, name: str) -> list[str]:
        return list(self._rdeps.get(name, ()))

    def chain_to(self, name: str) -> tuple[str, ...]:
        """A shortest chain from something saved explicitly to ``name``."""
        parents: dict[str, str | None] = {name: None}
        queue = deque([name])
        root = name
        while queue:
            current = queue.popleft()
            preds = self._rdeps.get(current)
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

    def to_dot(self, edges: list[tuple[str, str]] | None = None) -> str:
        lines = "\n".join(
            f'"{src}" -> "{dst}";' for src, dst in (self.edges() if edges is None else edges)
        )
        return f"digraph G {{\nrankdir = LR;\nnode [shape=box];\n{lines}\n}}\n"

    def all_paths(self, src: str, dst: str) -> str:
        """DOT of every edge that lies on some path from ``src`` to ``dst``."""
        reachable_from_src = self._closure(src, self._edges)
        reaching_dst = self._closure(dst, self._rdeps)
        on_path = reachable_from_src & reaching_dst
        return self.to_dot([(a, b) for a, b in self.edges() if a in on_path and b in on_path])

    @staticmethod
    def _closure(start: str, adjacency: dict[str, dict[str, None]]) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in adjacency.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen
