"""The dependency graph: typed nodes that read as torch.package's attribute dicts."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from torchpkg import Action, PackageExporter
from torchpkg._graph import DependencyGraph, ModuleNode
from torchpkg.errors import PackagingErrorReason, Problem

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py


def test_a_new_node_shows_no_attributes_but_is_still_true() -> None:
    node = ModuleNode("a")
    assert dict(node) == {}
    assert node


def test_an_interned_module_shows_action_source_and_is_package() -> None:
    node = ModuleNode("a", action=Action.INTERN, source="X = 1\n", is_package=True)
    assert dict(node) == {"action": Action.INTERN, "source": "X = 1\n", "is_package": True}


def test_a_pickle_node_shows_is_pickle_and_no_is_package() -> None:
    node = ModuleNode("<o.p.pkl>", action=Action.INTERN, is_pickle=True)
    assert dict(node) == {"action": Action.INTERN, "is_pickle": True}


def test_a_problem_shows_as_error_and_error_context() -> None:
    node = ModuleNode("a", problem=Problem(PackagingErrorReason.DENIED, "a", "by deny(['a'])"))
    assert node["error"] is PackagingErrorReason.DENIED
    assert node["error_context"] == "by deny(['a'])"
    assert node.get("action") is None


def test_attributes_given_to_add_node_are_shown_over_the_typed_ones() -> None:
    graph = DependencyGraph()
    graph.add_node("a", my_attr=1)
    graph.node("a").action = Action.EXTERN
    assert dict(graph.nodes["a"]) == {"action": Action.EXTERN, "my_attr": 1}


def test_first_path_of_a_node_that_is_not_there_raises_value_error() -> None:
    with pytest.raises(ValueError, match="is not in the digraph"):
        DependencyGraph().first_path("a")


def test_all_paths_without_a_path_is_an_empty_dot_graph() -> None:
    graph = DependencyGraph()
    graph.add_edge("a", "b")
    graph.add_node("c")
    assert graph.all_paths("a", "c") == graph.all_paths("b", "a") == DependencyGraph().to_dot()


def test_the_exporters_graph_is_what_its_queries_read(source_tree: SourceTree) -> None:
    app = source_tree({"__init__.py": "", "model.py": "import json\n"})
    with PackageExporter(io.BytesIO()) as exporter:
        exporter.intern([app, f"{app}.**"])
        exporter.save_module(f"{app}.model")
    graph = exporter.dependency_graph
    assert exporter.dependency_graph_string() == graph.to_dot()
    assert list(graph.successors(f"{app}.model")) == ["json"]
    assert exporter.get_rdeps("json") == list(graph.predecessors("json"))
    assert graph.nodes["json"]["action"] is Action.EXTERN
