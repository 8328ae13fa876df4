"""Safe loading: PackageImporter(..., allow=...) and load_pickle(..., safe=True)."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from torchpkg import PackageExporter, PackageImporter
from torchpkg.mangling import is_mangled
from torchpkg.security import Risk, UnsafePickleError

SourceTree = Callable[..., str]

MODELS = """\
class Model:
    def __init__(self):
        self.table = {"size": 3}

    class Config:
        pass
"""


def export(
    path: Path, obj: Any, top: str | None = None, protocol: int = 3, extern: str | None = None
) -> Path:
    with PackageExporter(path) as exporter:
        if top is not None:
            exporter.intern(f"{top}.**")
        if extern is not None:
            exporter.extern(extern)
        exporter.save_pickle("model", "model.pkl", obj, pickle_protocol=protocol)
    return path


@pytest.fixture
def models(source_tree: SourceTree) -> Any:
    top = source_tree({"__init__.py": "", "models.py": MODELS})
    return __import__(f"{top}.models", fromlist=["Model"])


def test_object_of_a_class_defined_in_the_package_loads_safely(tmp_path: Path, models: Any) -> None:
    archive = export(tmp_path / "m.pt", models.Model(), models.__name__.partition(".")[0])
    with PackageImporter(archive, allow=[]) as importer:
        loaded = importer.load_pickle("model", "model.pkl")
    assert loaded.table == {"size": 3}


def test_torch_model_loads_safely_with_the_defaults(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    model.register_buffer("scale", torch.ones(2, dtype=torch.float16))
    archive = export(tmp_path / "m.pt", model)
    with PackageImporter(archive, allow=[]) as importer:
        loaded = importer.load_pickle("model", "model.pkl")
    assert torch.equal(loaded[0].weight, model[0].weight)
    assert loaded.scale.dtype == torch.float16


def test_global_of_an_extern_module_is_refused_until_allow_lists_it(tmp_path: Path) -> None:
    archive = export(tmp_path / "m.pt", ipaddress.ip_address("10.0.0.1"))
    with PackageImporter(archive, allow=[]) as importer, pytest.raises(UnsafePickleError):
        importer.load_pickle("model", "model.pkl")
    with PackageImporter(archive, allow=["ipaddress.IPv4Address"]) as importer:
        assert importer.load_pickle("model", "model.pkl") == ipaddress.ip_address("10.0.0.1")


def test_importer_without_allow_loads_without_checks_as_torch_package_does(
    tmp_path: Path,
) -> None:
    archive = export(tmp_path / "m.pt", ipaddress.ip_address("10.0.0.1"))
    with PackageImporter(archive) as importer:
        assert importer.load_pickle("model", "model.pkl") == ipaddress.ip_address("10.0.0.1")


def test_safe_true_checks_a_pickle_of_an_importer_given_no_allow(tmp_path: Path) -> None:
    archive = export(tmp_path / "m.pt", ipaddress.ip_address("10.0.0.1"))
    with PackageImporter(archive) as importer, pytest.raises(UnsafePickleError):
        importer.load_pickle("model", "model.pkl", safe=True)


def test_safe_false_skips_the_checks_of_an_importer_given_allow(tmp_path: Path) -> None:
    archive = export(tmp_path / "m.pt", ipaddress.ip_address("10.0.0.1"))
    with PackageImporter(archive, allow=[]) as importer:
        assert importer.load_pickle("model", "model.pkl", safe=False) is not None


def test_refusal_lists_every_refused_global_and_the_allow_to_paste(tmp_path: Path) -> None:
    obj = [ipaddress.ip_address("10.0.0.1"), ipaddress.ip_network("10.0.0.0/8")]
    archive = export(tmp_path / "m.pt", obj)
    with PackageImporter(archive, allow=[]) as importer, pytest.raises(UnsafePickleError) as info:
        importer.load_pickle("model", "model.pkl")
    names = [finding.global_name for finding in info.value.findings]
    assert names == ["ipaddress.IPv4Address", "ipaddress.IPv4Network"]
    assert all(finding.verdict.risk is Risk.REVIEW for finding in info.value.findings)
    message = str(info.value)
    assert f"safe loading refused model/model.pkl in {archive}" in message
    assert 'pass allow=["ipaddress.IPv4Address", "ipaddress.IPv4Network"]' in message
    assert "Nothing in the pickle ran" in message


def test_refused_pickle_imports_none_of_the_packages_modules(tmp_path: Path, models: Any) -> None:
    obj = [models.Model(), ipaddress.ip_address("10.0.0.1")]
    archive = export(tmp_path / "m.pt", obj, models.__name__.partition(".")[0])
    before = {name for name in sys.modules if is_mangled(name)}
    with PackageImporter(archive, allow=[]) as importer:
        with pytest.raises(UnsafePickleError):
            importer.load_pickle("model", "model.pkl")
        assert {name for name in sys.modules if is_mangled(name)} == before


def test_nested_class_pickled_with_protocol_3_needs_getattr_and_is_refused_saying_why(
    tmp_path: Path, models: Any
) -> None:
    top = models.__name__.partition(".")[0]
    archive = export(tmp_path / "m.pt", models.Model.Config, top, protocol=3)
    with PackageImporter(archive, allow=[]) as importer, pytest.raises(UnsafePickleError) as info:
        importer.load_pickle("model", "model.pkl")
    assert "re-export with pickle_protocol=4" in str(info.value)


def test_nested_class_pickled_with_protocol_4_loads_safely(tmp_path: Path, models: Any) -> None:
    top = models.__name__.partition(".")[0]
    archive = export(tmp_path / "m.pt", models.Model.Config, top, protocol=4)
    with PackageImporter(archive, allow=[]) as importer:
        assert importer.load_pickle("model", "model.pkl").__qualname__ == "Model.Config"


def test_numpy_array_loads_once_numpy_is_allowed(tmp_path: Path) -> None:
    numpy = pytest.importorskip("numpy")
    archive = export(tmp_path / "m.pt", numpy.arange(4), extern="numpy.**")
    with PackageImporter(archive, allow=[]) as importer, pytest.raises(UnsafePickleError):
        importer.load_pickle("model", "model.pkl")
    with PackageImporter(archive, allow=["numpy.**"]) as importer:
        assert importer.load_pickle("model", "model.pkl").tolist() == [0, 1, 2, 3]


def test_bad_allow_pattern_is_reported_before_the_archive_is_opened(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"allow= takes patterns.*a\*\*b"):
        PackageImporter(tmp_path / "missing.pt", allow=["a**b"])
