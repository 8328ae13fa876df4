"""Archives cross over between torchpkg and torch.package, in both directions.

Each behaviour is checked for three directions: torchpkg writes and
torch.package reads, torch.package writes and torchpkg reads, and torchpkg on
both sides (the reference the other two must agree with).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402

import torchpkg  # noqa: E402
from _crossover import CROSSINGS, Direction  # noqa: E402
from torchpkg.security import check_integrity  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py


DIRECTIONS = {
    **CROSSINGS,
    "torchpkg-to-torchpkg": Direction(torchpkg.PackageExporter, torchpkg.PackageImporter),
}

Load = Callable[[type[Any], Path], Any]


@pytest.fixture(params=list(DIRECTIONS))
def direction(request: pytest.FixtureRequest) -> Direction:
    return DIRECTIONS[request.param]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tmp_path / "package.pt"


@pytest.fixture
def load() -> Iterator[Load]:
    """Open an archive with either importer; torchpkg's are closed at teardown."""
    opened: list[Any] = []

    def open_with(importer_cls: type[Any], path: Path) -> Any:
        importer = importer_cls(str(path))
        opened.append(importer)
        return importer

    yield open_with
    for importer in reversed(opened):
        close = getattr(importer, "close", None)
        if close is not None:
            close()


def _everything_in(package: str) -> list[str]:
    return [package, f"{package}.**"]


MODEL_SOURCES = {
    "__init__.py": "",
    "layers.py": """
        import torch
        from torch import nn


        class Scale(nn.Module):
            def __init__(self, factor):
                super().__init__()
                self.factor = nn.Parameter(torch.tensor(float(factor)))

            def forward(self, x):
                return x * self.factor
    """,
    "model.py": """
        from torch import nn

        from .layers import Scale


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(4, 3)
                self.scale = Scale(2.5)

            def forward(self, x):
                return self.scale(self.linear(x)).relu()
    """,
}


def _make_net(source_tree: SourceTree) -> tuple[str, Any]:
    pkg = source_tree(MODEL_SOURCES)
    torch.manual_seed(0)
    return pkg, importlib.import_module(f"{pkg}.model").Net()


def _save_net(exporter: Any, pkg: str, net: Any) -> set[str]:
    """Intern ``pkg`` and pickle ``net`` as model/model.pkl; the modules interned."""
    with exporter as open_exporter:
        open_exporter.intern(_everything_in(pkg))
        open_exporter.save_pickle("model", "model.pkl", net)
        return set(open_exporter.interned_modules())


# --- modules with classes ------------------------------------------------------------


def test_module_subclass_using_another_packaged_module_gives_equal_outputs(
    direction: Direction, source_tree: SourceTree, archive: Path, load: Load
) -> None:
    pkg, net = _make_net(source_tree)
    _save_net(direction.exporter(str(archive)), pkg, net)

    loaded = load(direction.importer, archive).load_pickle("model", "model.pkl")

    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), net(x))
    assert type(loaded) is not type(net)
    assert type(loaded.scale).__module__.endswith(f".{pkg}.layers")
    assert tp._mangling.is_mangled(type(loaded.scale).__module__)


def test_nested_packages_with_relative_imports_resolve_on_the_other_side(
    direction: Direction, source_tree: SourceTree, archive: Path, load: Load
) -> None:
    pkg = source_tree(
        {
            "__init__.py": "",
            "core/__init__.py": "from .values import BASE\n",
            "core/values.py": "BASE = 10\n",
            "core/ops/__init__.py": "",
            "core/ops/helpers.py": "def double(x):\n    return 2 * x\n",
            "core/ops/add.py": """
                from .. import BASE
                from ..values import BASE as ALSO_BASE
                from . import helpers


                def compute(x):
                    return helpers.double(x) + BASE + ALSO_BASE
            """,
        }
    )
    with direction.exporter(str(archive)) as exporter:
        exporter.intern(_everything_in(pkg))
        exporter.save_module(f"{pkg}.core.ops.add")

    add = load(direction.importer, archive).import_module(f"{pkg}.core.ops.add")

    assert add.compute(1) == 22
    assert add.helpers.__name__.endswith(f".{pkg}.core.ops.helpers")
    assert add.helpers is not sys.modules.get(f"{pkg}.core.ops.helpers")


# --- resources -------------------------------------------------------------------------


def test_text_and_binary_resources_read_back_on_the_other_side(
    direction: Direction, archive: Path, load: Load
) -> None:
    blob = bytes(range(256))
    with direction.exporter(str(archive)) as exporter:
        exporter.save_text("config", "settings.json", '{"lr": 0.1}')
        exporter.save_text("config.nested", "ünïcode.txt", "héllo wörld")
        exporter.save_binary("weights", "blob.bin", blob)

    importer = load(direction.importer, archive)

    assert importer.load_text("config", "settings.json") == '{"lr": 0.1}'
    assert importer.load_text("config.nested", "ünïcode.txt") == "héllo wörld"
    assert importer.load_binary("weights", "blob.bin") == blob


def test_packaged_code_reads_its_resources_with_importlib_resources(
    direction: Direction, source_tree: SourceTree, archive: Path, load: Load
) -> None:
    """The resources exist only in the archive, so they cannot come from the source tree."""
    pkg = source_tree(
        {
            "__init__.py": "",
            "data/__init__.py": "",
            "reader.py": """
                import importlib.resources

                from . import data


                def read_config():
                    return importlib.resources.files(data).joinpath("config.txt").read_text(
                        encoding="utf-8"
                    )


                def read_blob():
                    return importlib.resources.files(data).joinpath("blob.bin").read_bytes()
            """,
        }
    )
    with direction.exporter(str(archive)) as exporter:
        exporter.intern(_everything_in(pkg))
        exporter.save_module(f"{pkg}.reader")
        exporter.save_text(f"{pkg}.data", "config.txt", "lr = 0.1\n")
        exporter.save_binary(f"{pkg}.data", "blob.bin", b"\x00\xff\x10")

    reader = load(direction.importer, archive).import_module(f"{pkg}.reader")

    assert reader.read_config() == "lr = 0.1\n"
    assert reader.read_blob() == b"\x00\xff\x10"


# --- mocks and externs -----------------------------------------------------------------


def test_mocked_module_imports_on_the_other_side_and_using_it_raises_not_implemented(
    direction: Direction, source_tree: SourceTree, archive: Path, load: Load
) -> None:
    heavy = source_tree({"__init__.py": "", "ops.py": "def compute(x):\n    return x + 1\n"})
    pkg = source_tree(
        {
            "__init__.py": "",
            "uses.py": f"""
                import {heavy}.ops as ops
                from {heavy}.ops import compute

                LOADED = True


                def run_attribute():
                    return ops.compute(1)


                def run_imported_name():
                    return compute(1)
            """,
        }
    )
    with direction.exporter(str(archive)) as exporter:
        exporter.intern(_everything_in(pkg))
        exporter.mock(_everything_in(heavy))
        exporter.save_module(f"{pkg}.uses")
        mocked = set(exporter.mocked_modules())

    uses = load(direction.importer, archive).import_module(f"{pkg}.uses")

    assert f"{heavy}.ops" in mocked
    assert uses.LOADED
    with pytest.raises(NotImplementedError):
        uses.run_attribute()
    with pytest.raises(NotImplementedError):
        uses.run_imported_name()


def test_extern_modules_match_and_resolve_to_the_environments_module_objects(
    direction: Direction, source_tree: SourceTree, archive: Path, load: Load
) -> None:
    ext = source_tree({"__init__.py": "", "helpers.py": "def triple(x):\n    return 3 * x\n"})
    pkg = source_tree(
        {
            "__init__.py": "",
            "user.py": f"""
                from {ext} import helpers


                def run(x):
                    return helpers.triple(x)
            """,
        }
    )
    with direction.exporter(str(archive)) as exporter:
        exporter.intern(_everything_in(pkg))
        exporter.extern(_everything_in(ext))
        exporter.save_module(f"{pkg}.user")
        externed = set(exporter.externed_modules())

    importer = load(direction.importer, archive)
    user = importer.import_module(f"{pkg}.user")

    assert f"{ext}.helpers" in externed
    assert set(importer.extern_modules) == externed
    assert user.helpers is importlib.import_module(f"{ext}.helpers")
    assert user.run(2) == 6


# --- tensors and plain objects ---------------------------------------------------------


def test_tensors_sharing_one_storage_load_sharing_memory(
    direction: Direction, archive: Path, load: Load
) -> None:
    base = torch.arange(12, dtype=torch.float32)
    tensors = {
        "whole": base,
        "view": base[3:7],
        "grid": base.view(3, 4),
        "separate": base.clone(),
    }
    with direction.exporter(str(archive)) as exporter:
        exporter.save_pickle("data", "tensors.pkl", tensors)

    loaded = load(direction.importer, archive).load_pickle("data", "tensors.pkl")

    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor), name
    pointers = {name: t.untyped_storage().data_ptr() for name, t in loaded.items()}
    assert pointers["whole"] == pointers["view"] == pointers["grid"]
    assert pointers["separate"] != pointers["whole"]
    loaded["whole"][4] = -1.0
    assert loaded["view"][1].item() == -1.0
    assert loaded["grid"][1, 0].item() == -1.0
    assert loaded["separate"][4].item() == 4.0


def test_dicts_and_lists_of_packaged_class_instances_round_trip(
    direction: Direction, source_tree: SourceTree, archive: Path, load: Load
) -> None:
    pkg = source_tree(
        {
            "__init__.py": "",
            "shapes.py": """
                class Point:
                    def __init__(self, x, y):
                        self.x = x
                        self.y = y
            """,
        }
    )
    point_cls = importlib.import_module(f"{pkg}.shapes").Point
    origin = point_cls(0, 0)
    obj = {
        "name": "triangle",
        "points": [origin, point_cls(1, 0), point_cls(0, 1), origin],
        "meta": {"tags": ("a", "b"), "scale": 1.5, "missing": None, 3: [1, 2]},
    }
    with direction.exporter(str(archive)) as exporter:
        exporter.intern(_everything_in(pkg))
        exporter.save_pickle("shapes", "triangle.pkl", obj)

    loaded = load(direction.importer, archive).load_pickle("shapes", "triangle.pkl")

    assert loaded["name"] == "triangle"
    assert loaded["meta"] == obj["meta"]
    assert [(p.x, p.y) for p in loaded["points"]] == [(0, 0), (1, 0), (0, 1), (0, 0)]
    assert loaded["points"][0] is loaded["points"][3]
    loaded_cls = type(loaded["points"][0])
    assert loaded_cls.__name__ == "Point"
    assert loaded_cls is not point_cls
    assert loaded_cls.__module__.endswith(f".{pkg}.shapes")


# --- torch.package's known bug ---------------------------------------------------------

FUTURE_DATACLASS = {
    "__init__.py": "",
    "records.py": """
        from __future__ import annotations

        from dataclasses import dataclass, field


        @dataclass
        class Record:
            name: str
            values: list[int] = field(default_factory=list)
    """,
}


@pytest.mark.parametrize(
    "exporter_cls", [torchpkg.PackageExporter, tp.PackageExporter], ids=["torchpkg", "torch"]
)
def test_future_annotations_dataclass_fails_in_torch_package_but_loads_in_torchpkg(
    exporter_cls: type[Any], source_tree: SourceTree, archive: Path, load: Load
) -> None:
    """torch.package bug #74909: ``dataclasses`` looks the class's module up in
    ``sys.modules`` to resolve string annotations, and torch.package never puts
    its modules there. torchpkg loads the same archive."""
    pkg = source_tree(FUTURE_DATACLASS)
    record = importlib.import_module(f"{pkg}.records").Record("a", [1, 2])
    with exporter_cls(str(archive)) as exporter:
        exporter.intern(_everything_in(pkg))
        exporter.save_pickle("data", "record.pkl", record)

    with pytest.raises(AttributeError):
        tp.PackageImporter(str(archive)).load_pickle("data", "record.pkl")
    loaded = load(torchpkg.PackageImporter, archive).load_pickle("data", "record.pkl")

    assert dataclasses.is_dataclass(loaded)
    assert [f.name for f in dataclasses.fields(loaded)] == ["name", "values"]
    assert (loaded.name, loaded.values) == ("a", [1, 2])
    assert type(loaded).__module__.endswith(f".{pkg}.records")


# --- re-export -------------------------------------------------------------------------


def _reexport_torch_package_archive(
    source_tree: SourceTree, tmp_path: Path, load: Load
) -> tuple[str, Any, Path, set[str]]:
    """Export the net with torch.package, load it with torchpkg and export it again
    with torchpkg: the package, the original net, the second archive and what it interned."""
    pkg, net = _make_net(source_tree)
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    _save_net(tp.PackageExporter(str(first)), pkg, net)
    ours = load(torchpkg.PackageImporter, first)
    reloaded = ours.load_pickle("model", "model.pkl")
    exporter = torchpkg.PackageExporter(second, importer=(ours, torchpkg.sys_importer))
    return pkg, net, second, _save_net(exporter, pkg, reloaded)


def test_model_loaded_from_torch_archive_reexported_by_torchpkg_loads_in_torch_package(
    source_tree: SourceTree, tmp_path: Path, load: Load
) -> None:
    pkg, net, second, interned = _reexport_torch_package_archive(source_tree, tmp_path, load)
    theirs = tp.PackageImporter(str(second))
    final = theirs.load_pickle("model", "model.pkl")

    assert {f"{pkg}.model", f"{pkg}.layers"} <= interned
    assert not any(torchpkg.is_mangled(name) for name in interned)
    x = torch.randn(5, 4)
    assert torch.equal(final(x), net(x))
    assert type(final).__module__ == f"{theirs.id()}.{pkg}.model"


# --- the integrity manifest ------------------------------------------------------------


def test_torch_package_loads_a_torchpkg_archive_and_lists_its_manifest_as_a_data_file(
    source_tree: SourceTree, archive: Path
) -> None:
    pkg, net = _make_net(source_tree)
    _save_net(torchpkg.PackageExporter(archive), pkg, net)
    theirs = tp.PackageImporter(str(archive))
    x = torch.randn(5, 4)
    assert torch.equal(theirs.load_pickle("model", "model.pkl")(x), net(x))
    assert theirs.file_structure().has_file(".data/torchpkg/manifest.json")


def test_a_torch_package_archive_is_unverified_in_torchpkg(
    source_tree: SourceTree, archive: Path
) -> None:
    pkg, net = _make_net(source_tree)
    _save_net(tp.PackageExporter(str(archive)), pkg, net)
    with pytest.raises(torchpkg.UnverifiedArchiveError):
        torchpkg.PackageImporter(archive, verify=True)
    with torchpkg.PackageImporter(archive) as ours:
        assert check_integrity(ours.zip_reader).has_manifest is False


def test_a_torch_package_archive_reexported_by_torchpkg_gains_a_manifest(
    source_tree: SourceTree, tmp_path: Path, load: Load
) -> None:
    _, net, second, _ = _reexport_torch_package_archive(source_tree, tmp_path, load)
    with torchpkg.PackageImporter(second, verify=True) as verified:
        x = torch.randn(5, 4)
        assert torch.equal(verified.load_pickle("model", "model.pkl")(x), net(x))
