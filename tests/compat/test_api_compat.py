"""torchpkg's public API has torch.package's names, signatures, defaults and outputs."""

from __future__ import annotations

import importlib
import inspect
import io
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402
from torch._jit_internal import _qualified_name  # noqa: E402

import torchpkg  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py

EXPORTER_METHODS = [
    "intern",
    "extern",
    "mock",
    "deny",
    "save_pickle",
    "save_text",
    "save_binary",
    "save_module",
    "save_source_file",
    "save_source_string",
    "add_dependency",
    "register_extern_hook",
    "register_mock_hook",
    "register_intern_hook",
    "dependency_graph_string",
    "all_paths",
    "get_rdeps",
    "externed_modules",
    "interned_modules",
    "mocked_modules",
    "denied_modules",
    "get_unique_id",
    "close",
]
IMPORTER_METHODS = [
    "import_module",
    "load_pickle",
    "load_text",
    "load_binary",
    "file_structure",
    "id",
    "python_version",
]
METHODS = [
    pytest.param(tp.PackageExporter, torchpkg.PackageExporter, name, id=f"PackageExporter.{name}")
    for name in EXPORTER_METHODS
] + [
    pytest.param(tp.PackageImporter, torchpkg.PackageImporter, name, id=f"PackageImporter.{name}")
    for name in IMPORTER_METHODS
]

_EDGE = re.compile(r'^"(.+)" -> "(.+)";$', re.MULTILINE)
_MANGLE_PARENT = re.compile(r"<torch_package_\d+>")


def _parameters(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """Name, kind and default of each parameter; annotations are ignored."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def _edges(dot: str) -> set[tuple[str, str]]:
    return set(_EDGE.findall(dot))


# --- signatures ------------------------------------------------------------------------


@pytest.mark.parametrize(("theirs", "ours", "method"), METHODS)
def test_method_has_torch_package_parameter_names_kinds_and_defaults(
    theirs: type[Any], ours: type[Any], method: str
) -> None:
    # Options of our own come after torch.package's, keyword-only with a default:
    # every call written for torch.package means the same here.
    mine = [
        p
        for p in _parameters(getattr(ours, method))
        if not (p[1] is inspect.Parameter.KEYWORD_ONLY and p[2] is not inspect.Parameter.empty)
        or p[0] in {q[0] for q in _parameters(getattr(theirs, method))}
    ]
    assert mine == _parameters(getattr(theirs, method))


def test_include_patterns_are_positional_or_keyword_like_torch_package() -> None:
    for method in ("intern", "extern", "mock", "deny"):
        include = inspect.signature(getattr(torchpkg.PackageExporter, method)).parameters["include"]
        assert include.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, method


def test_exporter_constructor_takes_torch_package_parameters_with_own_sys_importer() -> None:
    """torchpkg may add keyword-only options with defaults after torch.package's."""
    ours = inspect.signature(torchpkg.PackageExporter).parameters
    theirs = inspect.signature(tp.PackageExporter).parameters
    shared = [(p.name, p.kind) for p in list(ours.values())[: len(theirs)]]
    assert shared == [(p.name, p.kind) for p in theirs.values()]
    for extra in list(ours.values())[len(theirs) :]:
        assert extra.kind is inspect.Parameter.KEYWORD_ONLY, extra
        assert extra.default is not inspect.Parameter.empty, extra
    assert ours["importer"].default is torchpkg.sys_importer
    assert theirs["importer"].default is tp.sys_importer
    assert ours["debug"].default is theirs["debug"].default is False


def test_importer_constructor_takes_torch_package_parameters_allowing_every_module() -> None:
    """torchpkg may add keyword-only options with defaults after torch.package's."""
    ours = inspect.signature(torchpkg.PackageImporter).parameters
    theirs = inspect.signature(tp.PackageImporter).parameters
    shared = [(p.name, p.kind) for p in list(ours.values())[: len(theirs)]]
    assert shared == [(p.name, p.kind) for p in theirs.values()]
    for extra in list(ours.values())[len(theirs) :]:
        assert extra.kind is inspect.Parameter.KEYWORD_ONLY, extra
        assert extra.default is not inspect.Parameter.empty, extra
    for name in ("numpy", "os.path", "anything.at.all"):
        assert ours["module_allowed"].default(name) is theirs["module_allowed"].default(name)


# --- the dependency graph and module lists ----------------------------------------------


@pytest.fixture
def project(source_tree: SourceTree) -> tuple[str, str, str]:
    """``(app, lib, heavy)``: ``app.model`` (defines ``Thing``) imports ``lib.dep``
    and ``heavy.ops``."""
    lib = source_tree({"__init__.py": "", "dep.py": "X = 1\n"})
    heavy = source_tree({"__init__.py": "", "ops.py": "def compute():\n    return 1\n"})
    app = source_tree(
        {
            "__init__.py": "",
            "model.py": f"""
                import {lib}.dep
                from {heavy} import ops


                class Thing:
                    def __init__(self):
                        self.weight = None
            """,
        }
    )
    return app, lib, heavy


def _export(exporter_cls: type[Any], project: tuple[str, str, str]) -> Any:
    """One export with interned, extern, mocked and implicitly extern modules; closed."""
    app, lib, heavy = project
    thing = importlib.import_module(f"{app}.model").Thing()
    thing.weight = torch.ones(2)
    exporter = exporter_cls(io.BytesIO())
    exporter.intern([app, f"{app}.**"])
    exporter.extern([lib, f"{lib}.**"])
    exporter.mock([heavy, f"{heavy}.**"])
    exporter.save_pickle("objects", "thing.pkl", thing)
    exporter.save_source_string(f"{app}.extra", f"import collections\nimport {app}.model\n")
    exporter.save_text("objects", "notes.txt", "not a module")
    exporter.close()
    return exporter


@pytest.fixture
def exports(project: tuple[str, str, str]) -> tuple[Any, Any]:
    """``(torch.package's exporter, torchpkg's)`` after the same export."""
    return _export(tp.PackageExporter, project), _export(torchpkg.PackageExporter, project)


def test_dependency_graph_string_has_the_same_edges_as_torch_package(
    exports: tuple[Any, Any], project: tuple[str, str, str]
) -> None:
    theirs, ours = exports
    app, lib, _ = project
    expected = _edges(theirs.dependency_graph_string())
    assert ("<objects.thing.pkl>", f"{app}.model") in expected
    assert (f"{app}.model", f"{lib}.dep") in expected
    assert _edges(ours.dependency_graph_string()) == expected


def test_dependency_graph_string_is_a_dot_digraph_like_torch_package(
    exports: tuple[Any, Any],
) -> None:
    theirs, ours = exports
    header = "digraph G {\nrankdir = LR;\nnode [shape=box];\n"
    assert theirs.dependency_graph_string().startswith(header)
    assert ours.dependency_graph_string().startswith(header)
    assert ours.dependency_graph_string().rstrip().endswith("}")


@pytest.mark.parametrize(
    "query", ["interned_modules", "externed_modules", "mocked_modules", "denied_modules"]
)
def test_module_lists_hold_the_same_modules_as_torch_package(
    exports: tuple[Any, Any], query: str
) -> None:
    theirs, ours = exports
    assert set(getattr(ours, query)()) == set(getattr(theirs, query)())


def test_module_lists_of_the_shared_export_are_not_empty(
    exports: tuple[Any, Any], project: tuple[str, str, str]
) -> None:
    """Guards the comparison above against an export that lists nothing."""
    _, ours = exports
    app, lib, heavy = project
    assert {f"{app}.model", f"{app}.extra"} <= set(ours.interned_modules())
    assert f"{lib}.dep" in ours.externed_modules()
    assert f"{heavy}.ops" in ours.mocked_modules()


def test_get_rdeps_names_the_same_dependents_as_torch_package(
    exports: tuple[Any, Any], project: tuple[str, str, str]
) -> None:
    theirs, ours = exports
    app, lib, _ = project
    for module in (f"{app}.model", f"{lib}.dep"):
        assert set(ours.get_rdeps(module)) == set(theirs.get_rdeps(module)), module
    assert set(ours.get_rdeps(f"{app}.model")) == {"<objects.thing.pkl>", f"{app}.extra"}


def test_denied_modules_list_the_same_modules_as_torch_package(
    project: tuple[str, str, str],
) -> None:
    app, lib, heavy = project
    denied: list[set[str]] = []
    for exporter_cls, error in (
        (tp.PackageExporter, tp.PackagingError),
        (torchpkg.PackageExporter, torchpkg.PackagingError),
    ):
        exporter = exporter_cls(io.BytesIO())
        exporter.intern([app, f"{app}.**"])
        exporter.deny([lib, f"{lib}.**"])
        exporter.extern([heavy, f"{heavy}.**"])
        exporter.save_module(f"{app}.model")
        denied.append(set(exporter.denied_modules()))
        with pytest.raises(error):
            exporter.close()
    theirs, ours = denied
    assert ours == theirs == {f"{lib}.dep"}


@pytest.fixture
def single_letter_modules(source_tree: SourceTree) -> list[str]:
    """Top-level packages ``v`` -> ``w``, ``x``; ``w`` -> ``x``; ``x`` -> ``y``; ``z`` -> ``y``."""
    imports = {"v": ["w", "x"], "w": ["x"], "x": ["y"], "y": [], "z": ["y"]}
    taken = [name for name in imports if name in sys.modules]
    assert not taken, f"modules {taken} exist already"
    for name, targets in imports.items():
        source_tree({"__init__.py": "".join(f"import {t}\n" for t in targets)}, name=name)
    return list(imports)


def _single_letter_export(exporter_cls: type[Any], modules: list[str]) -> Any:
    exporter = exporter_cls(io.BytesIO())
    exporter.intern(modules)
    exporter.save_module("v")
    exporter.save_module("z")
    exporter.close()
    return exporter


def test_all_paths_has_the_same_edges_as_torch_package_for_single_letter_modules(
    single_letter_modules: list[str],
) -> None:
    """Single letters: torch.package's ``all_paths`` walks the characters of the names
    it is given (``set(src)``), so only one-character module names work there."""
    theirs = _single_letter_export(tp.PackageExporter, single_letter_modules)
    ours = _single_letter_export(torchpkg.PackageExporter, single_letter_modules)

    expected = _edges(theirs.all_paths("v", "y"))

    assert expected == {("v", "w"), ("v", "x"), ("w", "x"), ("x", "y")}
    assert _edges(ours.all_paths("v", "y")) == expected


def test_all_paths_without_a_path_is_an_empty_dot_graph_where_torch_package_returns_an_object(
    single_letter_modules: list[str],
) -> None:
    """torch.package returns its internal ``DiGraph`` instead of a DOT string when
    ``dst`` cannot be reached from ``src``."""
    theirs = _single_letter_export(tp.PackageExporter, single_letter_modules)
    ours = _single_letter_export(torchpkg.PackageExporter, single_letter_modules)

    assert not isinstance(theirs.all_paths("y", "v"), str)
    no_path = ours.all_paths("y", "v")
    assert isinstance(no_path, str)
    assert no_path.startswith("digraph G {")
    assert _edges(no_path) == set()


def test_all_paths_follows_dotted_module_names_where_torch_package_raises(
    project: tuple[str, str, str],
) -> None:
    """torch.package's ``all_paths`` raises ValueError for any name longer than one
    character (it looks each character up as a node); torchpkg gives the paths."""
    app, lib, _ = project
    theirs = _export(tp.PackageExporter, project)
    ours = _export(torchpkg.PackageExporter, project)

    with pytest.raises(ValueError, match="not in the digraph"):
        theirs.all_paths(f"{app}.extra", f"{lib}.dep")
    assert _edges(ours.all_paths(f"{app}.extra", f"{lib}.dep")) == {
        (f"{app}.extra", f"{app}.model"),
        (f"{app}.model", f"{lib}.dep"),
    }


# --- importer ids and mangled names -----------------------------------------------------


@pytest.fixture
def archive(tmp_path: Path, project: tuple[str, str, str]) -> Path:
    """A torchpkg archive of ``app.model.Thing``."""
    app, lib, heavy = project
    path = tmp_path / "thing.pt"
    thing = importlib.import_module(f"{app}.model").Thing()
    with torchpkg.PackageExporter(path) as exporter:
        exporter.intern([app, f"{app}.**"])
        exporter.extern([lib, f"{lib}.**"])
        exporter.mock([heavy, f"{heavy}.**"])
        exporter.save_pickle("objects", "thing.pkl", thing)
    return path


def test_importer_id_has_torch_package_format_and_differs_per_importer(archive: Path) -> None:
    theirs = tp.PackageImporter(str(archive))
    with torchpkg.PackageImporter(archive) as first, torchpkg.PackageImporter(archive) as second:
        ids = [theirs.id(), first.id(), second.id()]
    for importer_id in ids:
        assert _MANGLE_PARENT.fullmatch(importer_id), importer_id
    assert len(set(ids)) == 3


def test_torch_mangling_helpers_recognise_torchpkg_module_names(
    archive: Path, project: tuple[str, str, str]
) -> None:
    app, _, _ = project
    with torchpkg.PackageImporter(archive) as importer:
        module = type(importer.load_pickle("objects", "thing.pkl")).__module__

        assert tp._mangling.is_mangled(module)
        assert tp._mangling.demangle(module) == f"{app}.model"
        assert tp._mangling.get_mangle_prefix(module) == importer.id()


def test_torchscript_qualified_name_of_a_torchpkg_class_has_torch_package_shape(
    archive: Path, project: tuple[str, str, str]
) -> None:
    """``torch._jit_internal`` rewrites mangle parents to ``_torch_package_N_``."""
    app, _, _ = project
    shape = re.compile(rf"__torch__\._torch_package_\d+_\.{app}\.model\.Thing")
    theirs = tp.PackageImporter(str(archive)).load_pickle("objects", "thing.pkl")
    with torchpkg.PackageImporter(archive) as importer:
        ours = importer.load_pickle("objects", "thing.pkl")
        our_name = _qualified_name(type(ours))
        suffix = importer.id().strip("<>")

    assert shape.fullmatch(_qualified_name(type(theirs)))
    assert shape.fullmatch(our_name)
    assert f"_{suffix}_" in our_name


def test_torchpkg_mangling_helpers_recognise_torch_package_module_names(
    archive: Path, project: tuple[str, str, str]
) -> None:
    app, _, _ = project
    importer = tp.PackageImporter(str(archive))
    module = type(importer.load_pickle("objects", "thing.pkl")).__module__

    assert torchpkg.is_mangled(module)
    assert torchpkg.demangle(module) == f"{app}.model"
    assert torchpkg.get_mangle_prefix(module) == importer.id()
