"""The exporter's dependency graph: a :class:`~torchpkg.graph.DiGraph` of modules.

Nodes are module names (and ``<package.resource>`` for pickles); an edge
``a -> b`` means ``a`` needs ``b``. The exporter works with the typed fields
of :class:`ModuleNode`; code written against torch.package reads the same
nodes as attribute mappings (``graph.nodes[name].get("error")``) and calls
the same methods (``successors``, ``first_path``, ``to_dot``, ...).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from torchpkg.errors import Problem
from torchpkg.graph import DiGraph
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

    def update(self, attributes: Mapping[str, Any]) -> None:
        """Set attributes given to ``add_node``; they show over the typed fields."""
        self.attributes.update(attributes)

    def __getitem__(self, key: str) -> Any:
        return self._view()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())

    def __bool__(self) -> bool:
        # A node is a node even before anything is known about it.
        return True


class DependencyGraph(DiGraph):
    """The exporter's graph: a :class:`DiGraph` whose nodes are :class:`ModuleNode`."""

    @property
    def nodes(self) -> dict[str, ModuleNode]:
        """Every node, in the order it was first seen, to its attributes."""
        return self._nodes

    # --- what the exporter asks -----------------------------------------------------------

    def node(self, name: str) -> ModuleNode:
        """The node called ``name``, made if it is new."""
        if name not in self._nodes:
            self.add_node(name)
        node: ModuleNode = self._nodes[name]
        return node

    def _new_node(self, n: Hashable) -> ModuleNode:
        # Nodes are module names; one added by hand under another key is named by its str().
        return ModuleNode(str(n))

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
