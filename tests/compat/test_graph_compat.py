"""torchpkg's ``DiGraph`` answers like torch.package's, and so does the exporter's graph.

Each test builds or queries a graph with the same code against both: a
torch.package ``DiGraph`` and each of torchpkg's graphs built by hand (the
standalone ``torchpkg.graph.DiGraph`` and the exporter's ``DependencyGraph``),
or the ``dependency_graph`` of the same export made by both exporters.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402
from torch.package._digraph import DiGraph as TorchDiGraph  # noqa: E402

import torchpkg  # noqa: E402
from torchpkg._graph import DependencyGraph  # noqa: E402
from torchpkg.graph import DiGraph  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py
OUR_GRAPHS = [pytest.param(DiGraph, id="DiGraph"), pytest.param(DependencyGraph, id="exporter")]
GRAPHS = [pytest.param(TorchDiGraph, id="torch.package"), *OUR_GRAPHS]


@pytest.fixture(params=OUR_GRAPHS)
def our_graph(request: pytest.FixtureRequest) -> type[Any]:
    """One of torchpkg's graph classes."""
    graph_cls: type[Any] = request.param
    return graph_cls


def _both(build: Callable[[Any], object], our_graph: type[Any]) -> tuple[object, object]:
    """``build`` run on a fresh graph of each kind: (torch.package's result, ours)."""
    return build(TorchDiGraph()), build(our_graph())


def _diamond(graph: Any) -> Any:
    """``a`` -> ``b``, ``c``; ``b``, ``c`` -> ``d``; ``e`` -> ``d``; and ``f`` alone."""
    for u, v in [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("e", "d")]:
        graph.add_edge(u, v)
    graph.add_node("f")
    return graph


# --- a graph built by hand ---------------------------------------------------------------


def test_successors_are_what_a_node_depends_on(our_graph: type[Any]) -> None:
    theirs, ours = _both(
        lambda g: {n: list(_diamond(g).successors(n)) for n in "abcdef"}, our_graph
    )
    assert ours == theirs


def test_predecessors_are_what_depends_on_a_node(our_graph: type[Any]) -> None:
    theirs, ours = _both(
        lambda g: {n: list(_diamond(g).predecessors(n)) for n in "abcdef"}, our_graph
    )
    assert ours == theirs


@pytest.mark.parametrize("graph_cls", GRAPHS)
@pytest.mark.parametrize("query", ["successors", "predecessors"])
def test_asking_about_a_node_that_is_not_there_raises_value_error(
    graph_cls: type[Any], query: str
) -> None:
    with pytest.raises(ValueError, match="is not in the"):
        getattr(graph_cls(), query)("missing")


def test_attributes_given_to_add_node_read_back_and_update(our_graph: type[Any]) -> None:
    def build(graph: Any) -> list[Any]:
        graph.add_node("foo", my_attr=1, other_attr=2)
        first = dict(graph.nodes["foo"])
        graph.add_node("foo", my_attr="different")
        return [first, graph.nodes["foo"]["my_attr"], graph.nodes["foo"]["other_attr"]]

    theirs, ours = _both(build, our_graph)
    assert ours == theirs == [{"my_attr": 1, "other_attr": 2}, "different", 2]


def test_edges_list_every_edge_in_the_order_they_were_added(our_graph: type[Any]) -> None:
    theirs, ours = _both(lambda g: list(_diamond(g).edges), our_graph)
    assert ours == theirs


def test_nodes_and_iteration_give_the_nodes_in_the_order_they_were_first_seen(
    our_graph: type[Any],
) -> None:
    theirs, ours = _both(lambda g: (list(_diamond(g)), list(g.nodes)), our_graph)
    assert ours == theirs


def test_any_hashable_is_a_node(our_graph: type[Any]) -> None:
    def build(graph: Any) -> list[Any]:
        graph.add_edge(1, 2)
        graph.add_edge((3, 4), 1)
        return [list(graph.edges), list(graph.successors((3, 4))), 2 in graph]

    theirs, ours = _both(build, our_graph)
    assert ours == theirs


def test_containment_is_false_for_missing_and_unhashable_values(our_graph: type[Any]) -> None:
    theirs, ours = _both(lambda g: ["a" in _diamond(g), "z" in g, [1, 2] in g, {} in g], our_graph)
    assert ours == theirs == [True, False, False, False]


def test_transitive_closures_of_one_letter_nodes(our_graph: type[Any]) -> None:
    """One-letter names: torch.package walks from each character of the name."""

    def build(graph: Any) -> list[set[str]]:
        _diamond(graph)
        forward = [graph.forward_transitive_closure(n) for n in "abdf"]
        return forward + [graph.backward_transitive_closure(n) for n in "adf"]

    theirs, ours = _both(build, our_graph)
    assert ours == theirs


@pytest.mark.parametrize("graph_cls", GRAPHS)
def test_closure_of_a_node_that_is_not_there_raises_value_error(graph_cls: type[Any]) -> None:
    graph = _diamond(graph_cls())
    with pytest.raises(ValueError, match="is not in the"):
        graph.forward_transitive_closure("z")


def test_closure_of_a_longer_name_follows_the_node_where_torch_package_spells_it_out(
    our_graph: type[Any],
) -> None:
    """torch.package's closures start from ``set(src)``: the characters of the name."""
    edges = [("app", "lib"), ("lib", "util"), ("a", "x")]
    theirs, ours = TorchDiGraph(), our_graph()
    for graph in (theirs, ours):
        for u, v in edges:
            graph.add_edge(u, v)

    with pytest.raises(ValueError, match="is not in the"):
        theirs.forward_transitive_closure("app")  # looks "p" up as a node
    assert ours.forward_transitive_closure("app") == {"app", "lib", "util"}
    assert ours.backward_transitive_closure("util") == {"app", "lib", "util"}


def test_all_paths_writes_the_edges_that_lie_on_a_path_in_the_same_order(
    our_graph: type[Any],
) -> None:
    theirs, ours = _both(lambda g: _diamond(g).all_paths("a", "d"), our_graph)
    assert ours == theirs
    assert '"e" -> "d";' not in str(ours)


def test_all_paths_of_a_longer_name_follows_the_node(our_graph: type[Any]) -> None:
    """torch.package walks back from each character of ``dst`` (``deque(dst)``)."""
    graph = our_graph()
    for u, v in [("app", "lib"), ("lib", "util"), ("app", "util"), ("other", "util")]:
        graph.add_edge(u, v)
    assert graph.all_paths("app", "util").splitlines()[3:-1] == [
        '"lib" -> "util";',
        '"app" -> "util";',
        '"app" -> "lib";',
    ]


def test_first_path_follows_the_dependent_seen_first_back_to_a_root(our_graph: type[Any]) -> None:
    theirs, ours = _both(lambda g: [_diamond(g).first_path(n) for n in "abcdef"], our_graph)
    assert ours == theirs
    assert ours[3] == ["a", "b", "d"]


def test_to_dot_writes_the_same_text(our_graph: type[Any]) -> None:
    theirs, ours = _both(lambda g: _diamond(g).to_dot(), our_graph)
    assert ours == theirs


def test_len_counts_the_nodes_where_torch_package_has_no_len(our_graph: type[Any]) -> None:
    assert not hasattr(TorchDiGraph, "__len__")
    assert len(_diamond(our_graph())) == 6


def test_first_path_stops_at_a_cycle_where_torch_package_loops_forever(
    our_graph: type[Any],
) -> None:
    graph = our_graph()
    graph.add_edge("a", "b")
    graph.add_edge("b", "a")
    assert graph.first_path("a") == ["b", "a"]


def test_all_paths_stops_at_a_cycle_where_torch_package_loops_forever(
    our_graph: type[Any],
) -> None:
    graph = our_graph()
    graph.add_edge("a", "b")
    graph.add_edge("b", "a")
    assert graph.all_paths("a", "b").splitlines()[3:-1] == ['"a" -> "b";', '"b" -> "a";']


# --- the graph of an export --------------------------------------------------------------


@pytest.fixture
def project(source_tree: SourceTree) -> tuple[str, str, str]:
    """``(app, lib, heavy)``: ``app.model`` imports ``lib.dep``, ``heavy.ops`` and json."""
    lib = source_tree({"__init__.py": "", "dep.py": "X = 1\n"})
    heavy = source_tree({"__init__.py": "", "ops.py": "Y = 2\n"})
    app = source_tree(
        {
            "__init__.py": "",
            "model.py": f"""
                import json
                import {lib}.dep
                from {heavy} import ops


                class Thing:
                    pass
            """,
        }
    )
    return app, lib, heavy


def _export(exporter_cls: type[Any], project: tuple[str, str, str]) -> Any:
    app, lib, heavy = project
    exporter = exporter_cls(io.BytesIO())
    exporter.intern([app, f"{app}.**"])
    exporter.extern([lib, f"{lib}.**"])
    exporter.mock([heavy, f"{heavy}.**"])
    exporter.save_pickle("objects", "thing.pkl", importlib.import_module(f"{app}.model").Thing())
    exporter.close()
    return exporter


@pytest.fixture
def graphs(project: tuple[str, str, str]) -> tuple[Any, Any]:
    """The dependency graphs of the same export: (torch.package's, torchpkg's)."""
    return (
        _export(tp.PackageExporter, project).dependency_graph,
        _export(torchpkg.PackageExporter, project).dependency_graph,
    )


def test_an_export_graph_is_a_digraph_of_its_tool(graphs: tuple[Any, Any]) -> None:
    theirs, ours = graphs
    assert isinstance(theirs, TorchDiGraph)
    assert isinstance(ours, DiGraph)


def test_an_export_graph_has_the_same_nodes_and_edges(graphs: tuple[Any, Any]) -> None:
    theirs, ours = graphs
    assert set(ours) == set(theirs)
    assert set(ours.edges) == set(theirs.edges)


def test_an_export_graph_marks_the_pickle_node(graphs: tuple[Any, Any]) -> None:
    pickles = [{n for n, attrs in g.nodes.items() if attrs.get("is_pickle")} for g in graphs]
    assert pickles[1] == pickles[0] == {"<objects.thing.pkl>"}


def test_an_export_graph_records_the_same_action_for_each_module(
    graphs: tuple[Any, Any], project: tuple[str, str, str]
) -> None:
    """Actions are each tool's own enum; their member names agree."""
    actions = [
        {n: attrs["action"].name for n, attrs in g.nodes.items() if not attrs.get("is_pickle")}
        for g in graphs
    ]
    app, lib, heavy = project
    assert actions[1] == actions[0]
    assert actions[1][f"{app}.model"] == "INTERN"
    assert actions[1][f"{lib}.dep"] == "EXTERN"
    assert actions[1][f"{heavy}.ops"] == "MOCK"
    assert actions[1]["json"] == "EXTERN"


def test_an_export_graph_keeps_the_interned_source(
    graphs: tuple[Any, Any], project: tuple[str, str, str]
) -> None:
    app, _, _ = project
    theirs, ours = graphs
    assert ours.nodes[f"{app}.model"]["source"] == theirs.nodes[f"{app}.model"]["source"]
    assert ours.nodes[f"{app}.model"]["is_package"] is theirs.nodes[f"{app}.model"]["is_package"]


def test_an_export_graph_answers_path_queries_alike(
    graphs: tuple[Any, Any], project: tuple[str, str, str]
) -> None:
    app, lib, _ = project
    theirs, ours = graphs
    for graph in (theirs, ours):
        assert graph.first_path(f"{lib}.dep") == [
            "<objects.thing.pkl>",
            f"{app}.model",
            f"{lib}.dep",
        ]
    assert set(ours.predecessors(f"{app}.model")) == set(theirs.predecessors(f"{app}.model"))
