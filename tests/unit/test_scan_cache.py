"""The scan cache: each module source is parsed once, whichever process exports it next.

What an export finds in a source is kept on disk under a digest of the text
(``$TORCHPKG_CACHE_DIR/scan``). These tests count parses; none looks at time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from torchpkg import PackageExporter, _scan_cache
from torchpkg._scan_cache import SCAN_CACHE_ENV, ScanCache
from torchpkg._source_scan import FoundImport, find_imports

SourceTree = Callable[..., str]

MODEL = """\
from . import helpers

def make():
    from .helpers import scale
    return scale
"""
HELPERS = """\
try:
    import numpy_that_is_not_here
except ImportError:
    numpy_that_is_not_here = None

def scale(x):
    return 2 * x
"""


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("TORCHPKG_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The filenames of the sources parsed while the test runs."""
    parsed: list[str] = []

    def counting(source: str | bytes, filename: str = "<source>") -> tuple[FoundImport, ...]:
        parsed.append(filename)
        return find_imports(source, filename)

    monkeypatch.setattr(_scan_cache, "find_imports", counting)
    return parsed


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("scan/*/*"))


def export(top: str, path: Path) -> list[str]:
    with PackageExporter(path) as exporter:
        exporter.intern(f"{top}.**")
        exporter.save_module(f"{top}.model")
    return sorted(exporter.interned_modules())


def test_a_second_process_parses_none_of_the_sources_the_first_one_did(
    source_tree: SourceTree, cache_dir: Path, tmp_path: Path
) -> None:
    top = source_tree({"__init__.py": "", "model.py": MODEL, "helpers.py": HELPERS})
    script = textwrap.dedent(
        f"""
        import json, sys
        from torchpkg import PackageExporter, _scan_cache

        parsed = []
        find_imports = _scan_cache.find_imports
        _scan_cache.find_imports = lambda *args: parsed.append(args[1]) or find_imports(*args)
        with PackageExporter(sys.argv[1]) as exporter:
            exporter.intern("{top}.**")
            exporter.save_module("{top}.model")
        print(json.dumps([sorted(exporter.interned_modules()), parsed]))
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "src"), *sys.path]))

    def run(archive: str) -> list[list[str]]:
        command = [sys.executable, "-c", script, str(tmp_path / archive)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        result: list[list[str]] = json.loads(done.stdout)
        return result

    first_interned, first_parsed = run("first.pt")
    second_interned, second_parsed = run("second.pt")

    assert sorted(first_parsed) == [f"{top}.helpers", f"{top}.model"]
    assert second_parsed == []
    assert second_interned == first_interned == [f"{top}.helpers", f"{top}.model"]


def test_an_edited_source_is_parsed_again_and_its_new_imports_are_followed(
    source_tree: SourceTree, cache_dir: Path, tmp_path: Path, parses: list[str]
) -> None:
    top = source_tree({"__init__.py": "", "model.py": MODEL, "helpers.py": HELPERS, "extra.py": ""})
    export(top, tmp_path / "before.pt")
    parses.clear()

    (tmp_path / "src" / top / "model.py").write_text(MODEL + "from . import extra\n")

    assert export(top, tmp_path / "after.pt") == [f"{top}.extra", f"{top}.helpers", f"{top}.model"]
    assert parses == [f"{top}.model", f"{top}.extra"]


def test_one_source_is_parsed_once_for_every_module_name_it_is_saved_under(
    parses: list[str], tmp_path: Path
) -> None:
    cache = ScanCache(tmp_path)

    first = cache.imports("from . import sibling\n", "first.module", is_package=False)
    second = cache.imports("from . import sibling\n", "second.module", is_package=False)

    assert [(ref.module, ref.names) for ref in first + second] == [
        ("first", ("sibling",)),
        ("second", ("sibling",)),
    ]
    assert parses == ["first.module"]


def test_a_new_cache_on_the_same_folder_reads_back_exactly_what_the_scan_found(
    tmp_path: Path, parses: list[str]
) -> None:
    """Every kind of import survives the trip to disk: anchors, names, flags, lines."""
    source = textwrap.dedent(
        """\
        import importlib
        from ..up import a, b
        try:
            import maybe
        except ImportError:
            pass
        importlib.import_module(".by_package", __package__)
        importlib.import_module(".by_name", __name__)
        importlib.import_module(".named", "=odd.pkg")
        __import__("dyn", fromlist=["x"], level=1)
        """
    )
    found = ScanCache(tmp_path).found(source, "pkg/mod.py")

    assert ScanCache(tmp_path).found(source, "pkg/mod.py") == found == find_imports(source)
    assert parses == ["pkg/mod.py"]


def test_a_damaged_entry_is_ignored_and_replaced(tmp_path: Path, parses: list[str]) -> None:
    source = "import json\n"
    ScanCache(tmp_path).found(source, "mod.py")
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(entry.read_bytes()[:-5])  # cut short, as by a crash

    found = ScanCache(tmp_path).found(source, "mod.py")

    assert [ref.name for ref in found] == ["json"]
    assert parses == ["mod.py", "mod.py"]
    assert ScanCache(tmp_path).found(source, "mod.py") == found
    assert len(parses) == 2


def test_an_entry_of_another_source_under_this_ones_name_is_ignored(
    tmp_path: Path, parses: list[str]
) -> None:
    ScanCache(tmp_path).found("import json\n", "json_user.py")
    (json_entry,) = tmp_path.iterdir()
    ScanCache(tmp_path).found("import os\n", "os_user.py")
    (os_entry,) = set(tmp_path.iterdir()) - {json_entry}
    os_entry.write_bytes(json_entry.read_bytes())

    found = ScanCache(tmp_path).found("import os\n", "os_user.py")

    assert [ref.name for ref in found] == ["os"]
    assert parses == ["json_user.py", "os_user.py", "os_user.py"]


def row(text: str) -> bytes:
    """An entry for the test's source holding the one row ``text``."""
    return b'{"format": 1, "source": "SOURCE", "imports": [' + text.encode() + b"]}"


@pytest.mark.parametrize(
    "entry",
    [
        b"\xff\xfe not json",
        b"[]",
        b'{"format": 1, "imports": []}',
        row('["json", 0, "elsewhere", [], 1, false, false]'),
        row('["json", -1, "package", [], 1, false, false]'),
        row('["json", 0, "package", [], 1, 0, false]'),
        b'{"format": 99, "source": "SOURCE", "imports": []}',
    ],
    ids=["not-json", "not-an-entry", "no-digest", "anchor", "level", "flag", "format"],
)
def test_an_entry_that_is_not_exactly_a_scan_result_is_a_miss(
    tmp_path: Path, parses: list[str], entry: bytes
) -> None:
    ScanCache(tmp_path).found("import json\n", "mod.py")
    (path,) = tmp_path.iterdir()
    path.write_bytes(entry.replace(b"SOURCE", path.stem.encode()))

    found = ScanCache(tmp_path).found("import json\n", "mod.py")

    assert [ref.name for ref in found] == ["json"]
    assert len(parses) == 2


def test_an_unusable_cache_folder_leaves_exports_working(
    source_tree: SourceTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("TORCHPKG_CACHE_DIR", str(not_a_folder / "cache"))
    top = source_tree({"__init__.py": "", "model.py": MODEL, "helpers.py": HELPERS})

    assert export(top, tmp_path / "model.pt") == [f"{top}.helpers", f"{top}.model"]


def test_a_failed_write_leaves_no_entry_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_scan_cache.os, "replace", full_disk)

    found = ScanCache(tmp_path).found("import json\n", "mod.py")

    assert [ref.name for ref in found] == ["json"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["off", "0", ""])
def test_the_scan_cache_variable_set_to_off_keeps_everything_in_memory(
    source_tree: SourceTree,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    monkeypatch.setenv(SCAN_CACHE_ENV, value)
    top = source_tree({"__init__.py": "", "model.py": MODEL, "helpers.py": HELPERS})

    assert export(top, tmp_path / "model.pt") == [f"{top}.helpers", f"{top}.model"]
    assert not cache_dir.exists()


def test_entries_are_kept_in_a_folder_only_its_owner_can_read(
    source_tree: SourceTree, cache_dir: Path, tmp_path: Path
) -> None:
    top = source_tree({"__init__.py": "", "model.py": MODEL, "helpers.py": HELPERS})
    export(top, tmp_path / "model.pt")

    folders = {entry.parent for entry in entries(cache_dir)}
    assert [folder.stat().st_mode & 0o777 for folder in folders] == [0o700]


def test_processes_writing_the_same_entries_at_once_leave_only_whole_ones(
    tmp_path: Path, parses: list[str]
) -> None:
    """Every process misses on every source and writes it: the renames race, nothing tears."""
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from torchpkg._scan_cache import ScanCache

        start = float(sys.argv[2])
        time.sleep(max(0.0, start - time.time()))
        for round_ in range(5):
            cache = ScanCache(Path(sys.argv[1]))
            for i in range(40):
                cache.found(f"import mod_{i}\\n" + "x = 1\\n" * 2000, f"m{i}.py")
        """
    )
    start = str(time.time() + 1.0)  # after every writer has started
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), start]) for _ in range(4)
    ]
    assert [writer.wait() for writer in writers] == [0, 0, 0, 0]

    names = sorted(path.name for path in tmp_path.iterdir())
    assert len(names) == 40
    assert not [name for name in names if name.startswith(".")]
    cache = ScanCache(tmp_path)
    for i in range(40):
        found = cache.found(f"import mod_{i}\n" + "x = 1\n" * 2000, f"m{i}.py")
        assert [ref.name for ref in found] == [f"mod_{i}"]
    assert parses == []  # every entry read back whole
