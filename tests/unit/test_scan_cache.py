"""The scan cache: each module source is parsed once, whichever process exports it next.

What an export finds in a source is kept on disk under a digest of the text
(``$TORCHPKG_CACHE_DIR/scan``). These tests count parses; none looks at time.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
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


def scanned(folder: Path, source: str, filename: str = "mod.py") -> tuple[FoundImport, ...]:
    """What a new process would find for ``source``, with entries written as an export does."""
    cache = ScanCache(folder)
    found = cache.found(source, filename)
    cache.flush()
    return found


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
    found = scanned(tmp_path, source)

    assert scanned(tmp_path, source) == found == find_imports(source)
    assert parses == ["mod.py"]


def test_nothing_reaches_the_disk_before_the_resolution_ends(
    tmp_path: Path, parses: list[str]
) -> None:
    """An export's new entries are one transaction, written when its resolution is done."""
    ScanCache(tmp_path).found("import json\n", "mod.py")

    scanned(tmp_path, "import json\n")

    assert parses == ["mod.py", "mod.py"]


def stored(folder: Path) -> dict[bytes, bytes]:
    with contextlib.closing(sqlite3.connect(folder / "imports.sqlite")) as database:
        return dict(database.execute("SELECT source, entry FROM imports"))


def store(folder: Path, key: bytes, entry: bytes) -> None:
    with contextlib.closing(sqlite3.connect(folder / "imports.sqlite")) as database, database:
        database.execute("UPDATE imports SET entry = ? WHERE source = ?", (entry, key))


def test_a_damaged_entry_is_ignored_and_replaced(tmp_path: Path, parses: list[str]) -> None:
    scanned(tmp_path, "import json\n")
    ((key, entry),) = stored(tmp_path).items()
    store(tmp_path, key, entry[:-5])  # cut short

    found = scanned(tmp_path, "import json\n")

    assert [ref.name for ref in found] == ["json"]
    assert stored(tmp_path) == {key: entry}
    assert len(parses) == 2


def test_an_entry_of_another_source_under_this_ones_digest_is_ignored(
    tmp_path: Path, parses: list[str]
) -> None:
    scanned(tmp_path, "import json\n", "json_user.py")
    ((json_key, json_entry),) = stored(tmp_path).items()
    scanned(tmp_path, "import os\n", "os_user.py")
    (os_key,) = set(stored(tmp_path)) - {json_key}
    store(tmp_path, os_key, json_entry)

    found = scanned(tmp_path, "import os\n", "os_user.py")

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
    scanned(tmp_path, "import json\n")
    (key,) = stored(tmp_path)
    store(tmp_path, key, entry.replace(b"SOURCE", key.hex().encode()))

    found = scanned(tmp_path, "import json\n")

    assert [ref.name for ref in found] == ["json"]
    assert len(parses) == 2


def test_a_cache_file_that_is_not_a_database_is_replaced_by_a_new_one(
    tmp_path: Path, parses: list[str]
) -> None:
    (tmp_path / "imports.sqlite").write_bytes(b"not a database, whatever it was" * 100)

    assert [ref.name for ref in scanned(tmp_path, "import json\n")] == ["json"]
    assert [ref.name for ref in scanned(tmp_path, "import json\n")] == ["json"]
    assert len(parses) == 1  # the second scan read the new file
    assert len(stored(tmp_path)) == 1


def test_an_unusable_cache_folder_leaves_exports_working(
    source_tree: SourceTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("TORCHPKG_CACHE_DIR", str(not_a_folder / "cache"))
    top = source_tree({"__init__.py": "", "model.py": MODEL, "helpers.py": HELPERS})

    assert export(top, tmp_path / "model.pt") == [f"{top}.helpers", f"{top}.model"]


def test_a_database_locked_by_another_process_past_the_timeout_costs_only_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_scan_cache, "_BUSY_TIMEOUT_S", 0.01)
    scanned(tmp_path, "import os\n")
    with contextlib.closing(sqlite3.connect(tmp_path / "imports.sqlite")) as other:
        other.execute("BEGIN EXCLUSIVE")

        found = scanned(tmp_path, "import json\n")

        other.rollback()
    assert [ref.name for ref in found] == ["json"]
    assert len(stored(tmp_path)) == 1


def test_a_python_without_sqlite3_keeps_the_cache_in_memory(
    source_tree: SourceTree, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_scan_cache, "_sqlite", None)
    top = source_tree({"__init__.py": "", "model.py": MODEL, "helpers.py": HELPERS})

    assert export(top, tmp_path / "model.pt") == [f"{top}.helpers", f"{top}.model"]
    assert not cache_dir.exists()


def test_a_process_forked_after_using_the_cache_opens_its_own_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite connections must not cross a fork: the child's pid tells it to reconnect."""
    connects: list[Path] = []
    connect = _scan_cache._connect

    def counting(path: Path) -> object:
        connects.append(path)
        return connect(path)

    monkeypatch.setattr(_scan_cache, "_connect", counting)
    cache = ScanCache(tmp_path)
    cache.found("import json\n", "parent.py")
    cache.flush()
    monkeypatch.setattr(_scan_cache.os, "getpid", lambda: -1)  # now the forked child

    cache.found("import os\n", "child.py")
    cache.flush()

    assert len(connects) == 2
    assert len(stored(tmp_path)) == 2


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

    (database,) = cache_dir.glob("scan/*/imports.sqlite")
    assert database.parent.stat().st_mode & 0o777 == 0o700


def test_processes_writing_the_same_entries_at_once_leave_only_whole_ones(
    tmp_path: Path, parses: list[str]
) -> None:
    """Every process misses on every source and writes it: transactions keep it whole."""
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
                if i % 10 == 9:
                    cache.flush()
        """
    )
    start = str(time.time() + 1.0)  # after every writer has started
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), start]) for _ in range(4)
    ]
    assert [writer.wait() for writer in writers] == [0, 0, 0, 0]

    assert len(stored(tmp_path)) == 40
    cache = ScanCache(tmp_path)
    for i in range(40):
        found = cache.found(f"import mod_{i}\n" + "x = 1\n" * 2000, f"m{i}.py")
        assert [ref.name for ref in found] == [f"mod_{i}"]
    assert parses == []  # every entry read back whole
