"""Libraries interned unpatched: the patterns of transformers and diffusers, in small.

Each pattern is one a real library uses: a lazy package that lists its own
folder, ``importlib.import_module("." + name, __name__)``, a module that
replaces itself in ``sys.modules``, ``importlib.util.find_spec`` and
``importlib.metadata`` probes. Torch-free.
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import importlib.util
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from torchpkg import PackageExporter, PackageImporter, _package_imports

SourceTree = Callable[..., str]

# A lazy package in the style of transformers: it lists its plugins/ folder, and
# imports a plugin by mangled name on first attribute access (PEP 562).
LAZY = {
    "__init__.py": """
        import importlib
        import os
        import sys
        import types

        PLUGINS = sorted(
            name[:-3]
            for name in os.listdir(os.path.join(os.path.dirname(__file__), "plugins"))
            if name.endswith(".py") and name != "__init__.py"
        )


        class _Lazy(types.ModuleType):
            def __getattr__(self, name):
                if name not in PLUGINS:
                    raise AttributeError(name)
                module = importlib.import_module(".plugins." + name, self.__name__)
                setattr(self, name, module)
                return module


        lazy = _Lazy(__name__)
        lazy.__dict__.update({k: v for k, v in globals().items() if k != "lazy"})
        sys.modules[__name__] = lazy
    """,
    "plugins/__init__.py": "",
    "plugins/alpha.py": "VALUE = 'alpha'\n",
    "plugins/beta.py": "VALUE = 'beta'\n",
    "data/table.txt": "1 2 3\n",
    "reader.py": """
        from pathlib import Path

        TABLE = (Path(__file__).parent / "data" / "table.txt").read_text().split()
    """,
    "model.py": """
        import importlib
        import importlib.util

        from . import alpha  # served by the lazy package's __getattr__


        class Model:
            def plugin(self, name):
                return importlib.import_module("." + name, __package__ + ".plugins").VALUE

            def absolute(self, name):
                return importlib.import_module(name)

            def spec(self, name):
                return importlib.util.find_spec(name)
    """,
}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "cache"
    monkeypatch.setenv("TORCHPKG_CACHE_DIR", str(root))
    yield root
    for folder, _dirs, _files in os.walk(root):  # read-only trees: let tmp_path go
        os.chmod(folder, stat.S_IRWXU)


@pytest.fixture
def lazy_package(source_tree: SourceTree, tmp_path: Path) -> tuple[str, Path, Any]:
    """The lazy library, exported with a Model pickled; (its name, archive, Model class)."""
    top = source_tree(LAZY)
    model = importlib.import_module(f"{top}.model")
    path = tmp_path / "lazy.pt"
    with PackageExporter(path) as exporter:
        exporter.intern(f"{top}.**")
        exporter.save_source_file(
            f"{top}.plugins", str(Path(sys.modules[top].__file__).parent / "plugins")
        )
        exporter.save_text(f"{top}.data", "table.txt", "1 2 3\n")
        exporter.save_module(f"{top}.reader")
        exporter.extern(["importlib", "importlib.**", "os", "sys", "types", "pathlib"])
        exporter.save_pickle("model", "model.pkl", model.Model())
    return top, path, model.Model


def test_a_package_listing_its_own_folder_fails_with_mangled_files_by_default(
    lazy_package: tuple[str, Path, Any],
) -> None:
    _top, path, _ = lazy_package
    with PackageImporter(path) as importer, pytest.raises(FileNotFoundError, match="torch_package"):
        importer.load_pickle("model", "model.pkl")


def test_materialized_files_let_a_package_list_its_own_folder(
    lazy_package: tuple[str, Path, Any], cache: Path
) -> None:
    top, path, _ = lazy_package
    with PackageImporter(path, materialize=True) as importer:
        importer.load_pickle("model", "model.pkl")
        package = importer.import_module(top)
        assert package.PLUGINS == ["alpha", "beta"]
        assert package.__name__ == f"{importer.id()}.{top}"
        assert Path(package.__file__).is_relative_to(cache)


def test_materialized_files_are_read_only_and_shared_by_packages_with_the_same_code(
    lazy_package: tuple[str, Path, Any], cache: Path
) -> None:
    top, path, _ = lazy_package
    with (
        PackageImporter(path, materialize=True) as first,
        PackageImporter(path, materialize=True) as second,
    ):
        file = Path(first.import_module(top).__file__)
        assert file == Path(second.import_module(top).__file__)
    assert not os.access(file, os.W_OK) or os.geteuid() == 0
    assert stat.S_IMODE(file.stat().st_mode) & 0o222 == 0
    assert len(list((cache / "files").iterdir())) == 1


def test_packaged_code_reads_data_files_next_to_its_module(
    lazy_package: tuple[str, Path, Any], cache: Path
) -> None:
    top, path, _ = lazy_package
    with PackageImporter(path, materialize=True) as importer:
        assert importer.import_module(f"{top}.reader").TABLE == ["1", "2", "3"]


def test_a_module_that_replaces_itself_in_sys_modules_is_what_importers_get(
    lazy_package: tuple[str, Path, Any], cache: Path
) -> None:
    top, path, _ = lazy_package
    with PackageImporter(path, materialize=True) as importer:
        package = importer.import_module(top)
        assert type(package).__name__ == "_Lazy"
        assert sys.modules[package.__name__] is package


def test_relative_import_module_by_mangled_name_loads_the_packaged_copy(
    lazy_package: tuple[str, Path, Any], cache: Path
) -> None:
    top, path, _ = lazy_package
    installed = importlib.import_module(f"{top}.plugins.beta")
    with PackageImporter(path, materialize=True) as importer:
        clone = importer.load_pickle("model", "model.pkl")
        assert clone.plugin("beta") == "beta"
        packaged = importer.import_module(f"{top}.plugins.beta")
        assert packaged is not installed
        assert packaged.__name__.startswith(importer.id())
        # the lazy __getattr__ took the same route, for `from . import alpha`
        assert importer.import_module(f"{top}.model").alpha.__name__.startswith(importer.id())


def test_the_real_importlib_finds_packaged_modules_by_mangled_name(
    lazy_package: tuple[str, Path, Any], cache: Path
) -> None:
    top, path, _ = lazy_package
    with PackageImporter(path, materialize=True) as importer:
        mangled = f"{importer.id()}.{top}.plugins.alpha"
        assert importlib.util.find_spec(mangled) is not None
        module = importlib.import_module(mangled)
        assert module is importer.import_module(f"{top}.plugins.alpha")
        assert module.__spec__.name == f"{top}.plugins.alpha"  # the importer's own spec
    with pytest.raises(ModuleNotFoundError):  # closed: its names are gone
        importlib.util.find_spec(mangled)


def test_absolute_import_module_of_a_packaged_name_loads_the_packaged_copy(
    lazy_package: tuple[str, Path, Any], cache: Path
) -> None:
    top, path, _ = lazy_package
    with PackageImporter(path, materialize=True) as importer:
        clone = importer.load_pickle("model", "model.pkl")
        packaged = clone.absolute(f"{top}.plugins.alpha")
        assert packaged is importer.import_module(f"{top}.plugins.alpha")
        assert clone.absolute("json") is importlib.import_module("json")  # not packaged


def test_find_spec_from_packaged_code_finds_packaged_modules(
    lazy_package: tuple[str, Path, Any], cache: Path
) -> None:
    top, path, _ = lazy_package
    with PackageImporter(path, materialize=True) as importer:
        clone = importer.load_pickle("model", "model.pkl")
        spec = clone.spec(f"{top}.plugins.beta")
        assert spec is not None
        assert spec.name == f"{importer.id()}.{top}.plugins.beta"
        assert clone.spec("json") == importlib.util.find_spec("json")
        assert clone.spec("no_such_module_anywhere") is None


def test_packaged_code_loading_its_own_files_by_path_leaves_real_names_alone(
    source_tree: SourceTree, tmp_path: Path, cache: Path
) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "helper.py": "VALUE = 1\n",
            "direct.py": """
                import importlib.util
                from pathlib import Path

                spec = importlib.util.spec_from_file_location(
                    "direct_copy", Path(__file__).parent / "helper.py"
                )
                COPY = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(COPY)
                import sys
                sys.modules["direct_copy"] = COPY
            """,
        }
    )
    path = tmp_path / "direct.pt"
    with PackageExporter(path) as exporter:
        exporter.extern(["importlib.**", "importlib", "pathlib", "sys"])
        exporter.intern(f"{top}.**")
        exporter.save_module(f"{top}.direct")
        exporter.save_module(f"{top}.helper")
    with PackageImporter(path, materialize=True) as importer:
        assert importer.import_module(f"{top}.direct").COPY is not None
    assert "direct_copy" not in sys.modules


# --- distribution metadata ---------------------------------------------------------------


def _install(site: Path, name: str, version: str) -> None:
    (site / name).mkdir(parents=True, exist_ok=True)
    (site / name / "__init__.py").write_text(
        "import importlib.metadata\n\n"
        "def probe():\n"
        f"    return importlib.metadata.version({name!r})\n\n"
        "def owners():\n"
        f"    return importlib.metadata.packages_distributions().get({name!r})\n"
    )
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")


@pytest.fixture
def probing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A distribution ``probelib`` 1.0 installed in a site folder; exported interned."""
    site = tmp_path / "site"
    _install(site, "probelib", "1.0")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    path = tmp_path / "probe.pt"
    with PackageExporter(path) as exporter:
        exporter.intern("probelib")
        exporter.extern(["importlib", "importlib.**"])
        exporter.save_module("probelib")
    yield site, str(path)
    sys.modules.pop("probelib", None)


def test_an_interned_distribution_records_its_metadata(probing: tuple[Path, str]) -> None:
    _site, path = probing
    with PackageImporter(path) as importer:
        record = importer.environment()
        assert record is not None
        assert record.interned["probelib"].version == "1.0"
        assert record.interned["probelib"].packages == ("probelib",)


def test_packaged_code_sees_the_version_it_was_packaged_with_when_another_is_installed(
    probing: tuple[Path, str],
) -> None:
    site, path = probing
    (site / "probelib-1.0.dist-info").rename(site / "probelib-2.0.dist-info")
    (site / "probelib-2.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: probelib\nVersion: 2.0\n"
    )
    importlib.invalidate_caches()
    with PackageImporter(path) as importer:
        assert importer.import_module("probelib").probe() == "1.0"
    assert importlib.metadata.version("probelib") == "2.0"  # everyone else: the installed one


def test_packaged_code_sees_its_distribution_when_none_is_installed(
    probing: tuple[Path, str],
) -> None:
    site, path = probing
    for file in (site / "probelib-1.0.dist-info").iterdir():
        file.unlink()
    (site / "probelib-1.0.dist-info").rmdir()
    importlib.invalidate_caches()
    with PackageImporter(path) as importer:
        packaged = importer.import_module("probelib")
        assert packaged.probe() == "1.0"
        assert packaged.owners() == ["probelib"]
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("probelib")


# --- bytecode ---------------------------------------------------------------------------


def _export_answer(source_tree: SourceTree, tmp_path: Path, answer: int) -> tuple[str, Path]:
    top = source_tree({"__init__.py": "", "answer.py": f"ANSWER = {answer}\n"})
    importlib.import_module(f"{top}.answer")  # writes the interpreter's .pyc
    path = tmp_path / "answer.pt"
    with PackageExporter(path) as exporter:
        exporter.save_module(f"{top}.answer")
    return top, path


def test_a_module_from_an_unchanged_file_runs_the_packaged_code(
    source_tree: SourceTree, tmp_path: Path
) -> None:
    top, path = _export_answer(source_tree, tmp_path, 1)
    with PackageImporter(path) as importer:
        assert importer.import_module(f"{top}.answer").ANSWER == 1


def test_a_module_whose_file_changed_after_export_runs_the_packaged_source(
    source_tree: SourceTree, tmp_path: Path
) -> None:
    top, path = _export_answer(source_tree, tmp_path, 1)
    file = Path(sys.modules[f"{top}.answer"].__file__ or "")
    file.write_text("ANSWER = 2\n")
    del sys.modules[f"{top}.answer"]
    importlib.invalidate_caches()
    assert importlib.import_module(f"{top}.answer").ANSWER == 2  # its .pyc is now of 2
    with PackageImporter(path) as importer:
        assert importer.import_module(f"{top}.answer").ANSWER == 1


def test_the_import_system_is_left_as_it_was_once_every_importer_is_closed(
    lazy_package: tuple[str, Path, Any], cache: Path
) -> None:
    _top, path, _ = lazy_package
    gc.collect()  # importers other tests dropped go, and their finder with them
    with PackageImporter(path, materialize=True) as importer:
        importer.load_pickle("model", "model.pkl")
        assert any(isinstance(f, _package_imports.MangledNameFinder) for f in sys.meta_path)
    if not _package_imports._live:  # no importer of another test still open
        finders = [f for f in sys.meta_path if isinstance(f, _package_imports.MangledNameFinder)]
        assert finders == []


def test_an_importer_collected_while_another_registers_does_not_deadlock() -> None:
    """The collected importer's callback takes the registry lock that ``register``
    already holds (a GC pass can start at any allocation there)."""
    with _package_imports._live_lock:
        acquired = _package_imports._live_lock.acquire(timeout=1)
        assert acquired
        _package_imports._live_lock.release()
