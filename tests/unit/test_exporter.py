"""Unit tests of torchpkg.PackageExporter, torch-free.

Everything here packages plain Python objects and modules: none of these tests
imports torch (one checks, in a fresh interpreter, that torchpkg does not
either). Archives are read back with ``zipfile`` directly.
"""

from __future__ import annotations

import collections
import importlib
import io
import itertools
import logging
import os
import pickle
import platform
import subprocess
import sys
import textwrap
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from torchpkg import (
    EmptyMatchError,
    Importer,
    OrderedImporter,
    PackageExporter,
    PackagingError,
    PackagingErrorReason,
    RemovableHandle,
    sys_importer,
)

SourceTree = Callable[..., str]
Reason = PackagingErrorReason

_ghost_ids = itertools.count()


# --- helpers --------------------------------------------------------------------------


def read_archive(archive: bytes | Path) -> dict[str, bytes]:
    """Every record of a zip, by its full name."""
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    with zipfile.ZipFile(source) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def records(archive: bytes | Path, top: str = "archive") -> dict[str, bytes]:
    """The records under the archive's top folder, by their name inside it."""
    everything = read_archive(archive)
    assert all(name.startswith(top + "/") for name in everything), sorted(everything)
    return {name[len(top) + 1 :]: data for name, data in everything.items()}


def problem_sections(message: str) -> dict[str, list[str]]:
    """``* <reason sentence>`` headings of a PackagingError message -> the subjects under each."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in message.splitlines():
        if line.startswith("* "):
            current = sections.setdefault(line[2:], [])
        elif current is not None and line.startswith("    ") and not line.startswith("     "):
            current.append(line.strip())
    return sections


def subjects(error: PackagingError, reason: PackagingErrorReason) -> list[str]:
    return [problem.subject for problem in error.by_reason().get(reason, [])]


def pickle_node(package: str, resource: str) -> str:
    return f"<{package}.{resource}>"


@pytest.fixture
def shapes(source_tree: SourceTree) -> str:
    """A package with a class and a function to pickle."""
    return source_tree(
        {
            "__init__.py": "",
            "shapes.py": """
                class Point:
                    def __init__(self, x, y):
                        self.x, self.y = x, y
            """,
            "ops.py": """
                def scale(point, k):
                    return point
            """,
        }
    )


@pytest.fixture
def chain(source_tree: SourceTree) -> str:
    """``a -> b -> c``, and ``a -> d -> json``: a small graph to query."""
    return source_tree(
        {
            "__init__.py": "",
            "a.py": "from . import b, d\n",
            "b.py": "from . import c\n",
            "c.py": "VALUE = 1\n",
            "d.py": "import json\n",
        }
    )


def error_when_c_is_denied(chain: str, *, debug: bool = False) -> PackagingError:
    """The error of saving ``chain.a`` with everything interned but ``chain.c`` denied."""
    exporter = PackageExporter(io.BytesIO(), debug=debug)
    exporter.deny(f"{chain}.c")
    exporter.intern(f"{chain}.**")
    exporter.save_module(f"{chain}.a")
    with pytest.raises(PackagingError) as info:
        exporter.close()
    return info.value


# --- construction -----------------------------------------------------------------------


@pytest.mark.parametrize("as_target", [str, Path], ids=["str", "pathlib.Path"])
def test_a_path_target_receives_the_archive(
    tmp_path: Path, as_target: Callable[[Path], str | Path]
) -> None:
    target = tmp_path / "model.pt"
    with PackageExporter(as_target(target)) as exporter:
        exporter.save_text("notes", "readme.txt", "hello")
    assert records(target, top="model")["notes/readme.txt"] == b"hello"


def test_a_writable_binary_file_object_receives_the_archive() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_text("notes", "readme.txt", "hello")
    assert records(buffer.getvalue())["notes/readme.txt"] == b"hello"


def test_a_target_that_is_neither_a_path_nor_a_file_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="path or a writable binary file"):
        PackageExporter(42)  # type: ignore[arg-type]


def test_a_target_in_a_folder_that_does_not_exist_is_rejected_up_front(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PackageExporter(tmp_path / "missing" / "model.pt")


def test_the_context_manager_yields_the_exporter_and_closes_it_on_exit() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        assert isinstance(exporter, PackageExporter)
        assert buffer.getvalue() == b""
    assert zipfile.is_zipfile(buffer)


def test_close_twice_writes_the_archive_once() -> None:
    buffer = io.BytesIO()
    exporter = PackageExporter(buffer)
    exporter.close()
    written = buffer.getvalue()
    exporter.close()
    assert buffer.getvalue() == written
    assert zipfile.is_zipfile(buffer)


def test_an_importer_is_used_as_it_is() -> None:
    with PackageExporter(io.BytesIO(), importer=sys_importer) as exporter:
        assert exporter.importer is sys_importer


@pytest.mark.parametrize("sequence", [list, tuple])
def test_a_sequence_of_importers_becomes_an_ordered_importer(
    sequence: Callable[[list[Importer]], Any],
) -> None:
    with PackageExporter(io.BytesIO(), importer=sequence([sys_importer])) as exporter:
        assert isinstance(exporter.importer, OrderedImporter)


@pytest.mark.parametrize(
    "bad", [42, [object()], [sys_importer, "sys"]], ids=["int", "object", "str-in-list"]
)
def test_something_that_is_not_an_importer_is_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="Importer"):
        PackageExporter(io.BytesIO(), importer=bad)


def test_an_ordered_importer_still_exports_objects_of_the_environment(shapes: str) -> None:
    point = importlib.import_module(f"{shapes}.shapes").Point(1, 2)
    buffer = io.BytesIO()
    with PackageExporter(buffer, importer=[sys_importer]) as exporter:
        exporter.intern(f"{shapes}.**")
        exporter.save_pickle("data", "point.pkl", point)
    assert f"{shapes}/shapes.py" in records(buffer.getvalue())


# --- saving -------------------------------------------------------------------------------


def test_save_text_writes_utf8_under_the_package_folder() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_text("my.pkg", "notes.txt", "héllo ✓")
    assert records(buffer.getvalue())["my/pkg/notes.txt"] == "héllo ✓".encode()


def test_save_binary_writes_the_bytes_as_they_are() -> None:
    payload = bytes(range(256))
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_binary("blobs", "sub/all.bin", payload)
    assert records(buffer.getvalue())["blobs/sub/all.bin"] == payload


def test_save_pickle_writes_a_pickle_of_the_object() -> None:
    obj = {
        "numbers": [1, 2.5, 3 + 4j],
        "nested": ("x", None, True),
        "od": collections.Counter("aab"),
    }
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_pickle("data", "obj.pkl", obj)
    assert pickle.loads(records(buffer.getvalue())["data/obj.pkl"]) == obj


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_save_pickle_writes_the_pickle_protocol_asked_for(protocol: int) -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_pickle("data", "obj.pkl", [1, 2], pickle_protocol=protocol)
    data = records(buffer.getvalue())["data/obj.pkl"]
    assert data[:2] == bytes([pickle.PROTO[0], protocol])


def test_save_pickle_defaults_to_protocol_3() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_pickle("data", "obj.pkl", [1, 2])
    assert records(buffer.getvalue())["data/obj.pkl"][:2] == bytes([pickle.PROTO[0], 3])


@pytest.mark.parametrize("protocol", [1, 6, "3", True], ids=repr)
def test_an_unsupported_pickle_protocol_is_a_value_error_that_names_the_range(
    protocol: Any,
) -> None:
    with (
        PackageExporter(io.BytesIO()) as exporter,
        pytest.raises(ValueError, match=r"pickle_protocol must be an int from 2 to \d"),
    ):
        exporter.save_pickle("data", "obj.pkl", [1], pickle_protocol=protocol)


def test_save_pickle_resolves_the_modules_of_pickled_classes_and_functions(shapes: str) -> None:
    point = importlib.import_module(f"{shapes}.shapes").Point(1, 2)
    scale = importlib.import_module(f"{shapes}.ops").scale
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.intern(f"{shapes}.**")
        exporter.save_pickle("data", "obj.pkl", {"point": point, "scale": scale})
        assert sorted(exporter.interned_modules()) == [f"{shapes}.ops", f"{shapes}.shapes"]
    archive = records(buffer.getvalue())
    assert f"{shapes}/shapes.py" in archive
    assert f"{shapes}/ops.py" in archive


def test_save_pickle_without_dependencies_needs_no_rule_for_the_pickled_classes(
    shapes: str,
) -> None:
    point = importlib.import_module(f"{shapes}.shapes").Point(1, 2)
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_pickle("data", "point.pkl", point, dependencies=False)
        assert exporter.interned_modules() == []
    archive = records(buffer.getvalue())
    assert "data/point.pkl" in archive
    assert f"{shapes}/shapes.py" not in archive


def test_save_module_writes_the_module_source_whatever_the_rules_say(
    source_tree: SourceTree,
) -> None:
    top = source_tree({"__init__.py": "", "mod.py": "X = 1\n"})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.extern(f"{top}.**")
        exporter.save_module(f"{top}.mod")
    assert records(buffer.getvalue())[f"{top}/mod.py"] == b"X = 1\n"


def test_save_module_of_a_package_writes_its_init(source_tree: SourceTree) -> None:
    top = source_tree({"__init__.py": "NAME = 'pkg'\n"})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_module(top)
    assert records(buffer.getvalue())[f"{top}/__init__.py"] == b"NAME = 'pkg'\n"


def test_save_module_takes_a_module_name_not_a_module(source_tree: SourceTree) -> None:
    top = source_tree({"__init__.py": ""})
    with PackageExporter(io.BytesIO()) as exporter, pytest.raises(TypeError, match="module name"):
        exporter.save_module(importlib.import_module(top))  # type: ignore[arg-type]


def test_save_source_string_writes_a_module() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_source_string("made.up", "VALUE = 3\n")
    assert records(buffer.getvalue())["made/up.py"] == b"VALUE = 3\n"


def test_save_source_string_with_is_package_writes_an_init() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_source_string("made.up", "VALUE = 3\n", is_package=True)
    archive = records(buffer.getvalue())
    assert archive["made/up/__init__.py"] == b"VALUE = 3\n"
    assert "made/up.py" not in archive


def test_save_source_string_follows_the_imports_of_its_source(source_tree: SourceTree) -> None:
    top = source_tree({"__init__.py": "", "helper.py": "H = 1\n"})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.intern(f"{top}.**")
        exporter.save_source_string("made_up_main", f"from {top} import helper\n")
    assert f"{top}/helper.py" in records(buffer.getvalue())


def test_save_source_string_without_dependencies_does_not_follow_imports(
    source_tree: SourceTree,
) -> None:
    top = source_tree({"__init__.py": "", "helper.py": "H = 1\n"})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_source_string(
            "made_up_main", f"from {top} import helper\n", dependencies=False
        )
    assert f"{top}/helper.py" not in records(buffer.getvalue())


def test_modules_saved_from_source_may_import_each_other_in_any_order() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_source_string("made_up", "from .later import X\n", is_package=True)
        exporter.save_source_string("made_up.later", "X = 1\n")
    archive = records(buffer.getvalue())
    assert archive["made_up/__init__.py"] == b"from .later import X\n"
    assert archive["made_up/later.py"] == b"X = 1\n"


def test_save_source_file_writes_a_file_as_a_module(tmp_path: Path) -> None:
    file = tmp_path / "anything.py"
    file.write_text("VALUE = 'from a file'\n")
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_source_file("renamed.module", file)
    assert records(buffer.getvalue())["renamed/module.py"] == b"VALUE = 'from a file'\n"


def test_save_source_file_writes_a_directory_tree_as_package_modules(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "__init__.py").write_text("from .sub import leaf\n")
    (tree / "sub" / "__init__.py").write_text("")
    (tree / "sub" / "leaf.py").write_text("LEAF = 1\n")
    (tree / "top_level.py").write_text("TOP = 1\n")
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_source_file("saved_tree", tree)
    archive = records(buffer.getvalue())
    modules = {name: data for name, data in archive.items() if name.startswith("saved_tree/")}
    assert modules == {
        "saved_tree/__init__.py": b"from .sub import leaf\n",
        "saved_tree/sub/__init__.py": b"",
        "saved_tree/sub/leaf.py": b"LEAF = 1\n",
        "saved_tree/top_level.py": b"TOP = 1\n",
    }


def test_add_dependency_interns_a_module_that_matches_an_intern_rule(
    source_tree: SourceTree,
) -> None:
    top = source_tree({"__init__.py": "", "util.py": "U = 1\n"})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.intern(f"{top}.**")
        exporter.add_dependency(f"{top}.util")
    assert records(buffer.getvalue())[f"{top}/util.py"] == b"U = 1\n"


def test_add_dependency_externs_a_module_that_matches_an_extern_rule(
    source_tree: SourceTree,
) -> None:
    top = source_tree({"__init__.py": "", "util.py": "U = 1\n"})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.extern(f"{top}.**")
        exporter.add_dependency(f"{top}.util")
    archive = records(buffer.getvalue())
    assert f"{top}/util.py" not in archive
    assert f"{top}.util" in archive[".data/extern_modules"].decode().splitlines()


def test_saving_two_records_under_the_same_name_is_a_value_error() -> None:
    with PackageExporter(io.BytesIO()) as exporter:
        exporter.save_text("data", "a.txt", "first")
        with pytest.raises(ValueError, match="already"):
            exporter.save_binary("data", "a.txt", b"second")


@pytest.mark.parametrize(
    "resource", ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "a/./b.txt", ""]
)
def test_a_resource_path_that_is_not_plain_and_relative_is_a_value_error(resource: str) -> None:
    with PackageExporter(io.BytesIO()) as exporter, pytest.raises(ValueError, match="resource"):
        exporter.save_text("data", resource, "x")


def test_get_unique_id_returns_a_different_string_each_call() -> None:
    exporter = PackageExporter(io.BytesIO())
    ids = [exporter.get_unique_id() for _ in range(10)]
    exporter.close()
    assert all(isinstance(unique, str) for unique in ids)
    assert len(set(ids)) == len(ids)


# --- rules: intern / extern / mock / deny ------------------------------------------------


def test_single_star_matches_exactly_one_module_level(source_tree: SourceTree) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "a.py": "",
            "sub/__init__.py": "",
            "sub/deep.py": "",
            "main.py": "from . import a\nfrom .sub import deep\n",
        }
    )
    exporter = PackageExporter(io.BytesIO())
    exporter.intern(f"{top}.*")
    exporter.save_module(f"{top}.main")
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert f"{top}.a" in exporter.interned_modules()
    assert subjects(info.value, Reason.NO_ACTION) == [f"{top}.sub.deep"]


def test_double_star_matches_modules_at_any_depth(source_tree: SourceTree) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "sub/__init__.py": "",
            "sub/inner/__init__.py": "",
            "sub/inner/deep.py": "",
            "main.py": "from .sub.inner import deep\n",
        }
    )
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.intern(f"{top}.**")
        exporter.save_module(f"{top}.main")
    assert f"{top}/sub/inner/deep.py" in records(buffer.getvalue())


def test_star_inside_a_segment_matches_part_of_a_name(source_tree: SourceTree) -> None:
    top = source_tree({"__init__.py": "", "model_a.py": "", "model_b.py": ""})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.intern(f"{top}.model_*")
        exporter.add_dependency(f"{top}.model_a")
        exporter.add_dependency(f"{top}.model_b")
    archive = records(buffer.getvalue())
    assert {f"{top}/model_a.py", f"{top}/model_b.py"} <= set(archive)


def test_a_rule_takes_a_list_of_include_patterns(source_tree: SourceTree) -> None:
    top = source_tree({"__init__.py": "", "a.py": "", "b.py": ""})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.extern([f"{top}.a", f"{top}.b"])
        exporter.add_dependency(f"{top}.a")
        exporter.add_dependency(f"{top}.b")
    externs = records(buffer.getvalue())[".data/extern_modules"].decode().splitlines()
    assert {f"{top}.a", f"{top}.b"} <= set(externs)


def test_an_excluded_module_is_left_to_the_next_rule(source_tree: SourceTree) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "core.py": "",
            "vendor.py": "",
            "main.py": "from . import core, vendor\n",
        }
    )
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.intern(f"{top}.**", exclude=f"{top}.vendor")
        exporter.extern(f"{top}.vendor")
        exporter.save_module(f"{top}.main")
        assert f"{top}.core" in exporter.interned_modules()
        assert f"{top}.vendor" in exporter.externed_modules()


@pytest.mark.parametrize(
    ("first", "expected"),
    [("intern", "interned_modules"), ("extern", "externed_modules")],
)
def test_the_first_matching_rule_wins(source_tree: SourceTree, first: str, expected: str) -> None:
    top = source_tree({"__init__.py": "", "models.py": ""})
    exporter = PackageExporter(io.BytesIO())
    if first == "intern":
        exporter.intern(f"{top}.**")
        exporter.extern(f"{top}.models")
    else:
        exporter.extern(f"{top}.models")
        exporter.intern(f"{top}.**")
    exporter.add_dependency(f"{top}.models")
    exporter.close()
    assert f"{top}.models" in getattr(exporter, expected)()


def test_an_unmatched_rule_is_fine_by_default() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.intern("nothing_is_called_this.**")
        exporter.extern("nor_this")
        exporter.mock("nor_that")
    assert zipfile.is_zipfile(buffer)


def test_an_allow_empty_false_rule_that_matched_is_fine(source_tree: SourceTree) -> None:
    top = source_tree({"__init__.py": "", "a.py": ""})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.extern(f"{top}.**", allow_empty=False)
        exporter.add_dependency(f"{top}.a")
    assert zipfile.is_zipfile(buffer)


def test_an_allow_empty_false_rule_that_matched_nothing_raises_empty_match_error() -> None:
    exporter = PackageExporter(io.BytesIO())
    exporter.extern("nothing_is_called_this.**", allow_empty=False)
    with pytest.raises(EmptyMatchError) as info:
        exporter.close()
    assert isinstance(info.value, PackagingError)
    assert str(info.value) == (
        "Exporter did not match any modules to GlobGroup(include=nothing_is_called_this.**, "
        "exclude=()), which was marked as allow_empty=False"
    )
    assert list(info.value.by_reason()) == [Reason.EMPTY_MATCH]


def test_every_unmatched_allow_empty_false_rule_is_a_problem_and_a_note() -> None:
    exporter = PackageExporter(io.BytesIO())
    exporter.extern("first_unmatched.**", allow_empty=False)
    exporter.mock(["second_unmatched"], allow_empty=False)
    with pytest.raises(EmptyMatchError) as info:
        exporter.close()
    assert "first_unmatched.**" in str(info.value)
    assert "second_unmatched" not in str(info.value)
    assert subjects(info.value, Reason.EMPTY_MATCH) == [
        "extern(['first_unmatched.**'])",
        "mock(['second_unmatched'])",
    ]
    assert any("mock(['second_unmatched'])" in note for note in info.value.__notes__)


def test_allow_empty_false_on_a_rule_shadowed_by_an_earlier_one_is_unmatched(
    source_tree: SourceTree,
) -> None:
    top = source_tree({"__init__.py": "", "a.py": ""})
    exporter = PackageExporter(io.BytesIO())
    exporter.intern(f"{top}.**")
    exporter.mock(f"{top}.a", allow_empty=False)
    exporter.add_dependency(f"{top}.a")
    with pytest.raises(EmptyMatchError):
        exporter.close()


def test_the_standard_library_is_extern_without_a_rule(source_tree: SourceTree) -> None:
    top = source_tree({"__init__.py": "", "main.py": "import json\nimport os.path\n"})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_module(f"{top}.main")
    externs = records(buffer.getvalue())[".data/extern_modules"].decode().splitlines()
    assert {"json", "os.path"} <= set(externs)


def test_torch_is_extern_without_a_rule_and_without_being_imported(
    source_tree: SourceTree,
) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "main.py": """
                def lazy():
                    import torch
                    import torch.nn.functional
                    return torch
            """,
        }
    )
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_module(f"{top}.main")
        assert {"torch", "torch.nn.functional"} <= set(exporter.externed_modules())
    externs = records(buffer.getvalue())[".data/extern_modules"].decode().splitlines()
    assert {"torch", "torch.nn.functional"} <= set(externs)


@pytest.mark.parametrize("module", ["sys", "io"])
def test_sys_and_io_need_a_rule_and_the_error_says_why(
    source_tree: SourceTree, module: str
) -> None:
    top = source_tree({"__init__.py": "", "main.py": f"import {module}\n"})
    exporter = PackageExporter(io.BytesIO())
    exporter.save_module(f"{top}.main")
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert subjects(info.value, Reason.NO_ACTION) == [module]
    assert f"`{module}` has a lot of system level access" in str(info.value)
    assert any(f'extern("{module}")' in note for note in info.value.__notes__)


@pytest.mark.parametrize("module", ["sys", "io"])
def test_sys_and_io_can_be_externed_explicitly(source_tree: SourceTree, module: str) -> None:
    top = source_tree({"__init__.py": "", "main.py": f"import {module}\n"})
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.extern(module)
        exporter.save_module(f"{top}.main")
    assert module in records(buffer.getvalue())[".data/extern_modules"].decode().splitlines()


def test_a_mocked_module_is_written_as_a_stub_with_the_mock_support_module(
    source_tree: SourceTree,
) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "heavy.py": "SECRET_SOURCE_MARKER = 1\n",
            "main.py": "from . import heavy\n",
        }
    )
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.mock(f"{top}.heavy")
        exporter.save_module(f"{top}.main")
        assert exporter.mocked_modules() == [f"{top}.heavy"]
    archive = records(buffer.getvalue())
    stub = archive[f"{top}/heavy.py"].decode()
    assert "SECRET_SOURCE_MARKER" not in stub
    assert "from _mock import MockedObject" in stub
    assert "class MockedObject" in archive["_mock.py"].decode()


def test_a_mocked_package_is_written_as_a_package_stub(source_tree: SourceTree) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "heavy/__init__.py": "SECRET_SOURCE_MARKER = 1\n",
            "main.py": "from . import heavy\n",
        }
    )
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.mock(f"{top}.heavy")
        exporter.save_module(f"{top}.main")
    archive = records(buffer.getvalue())
    assert "from _mock import" in archive[f"{top}/heavy/__init__.py"].decode()


def test_no_mock_support_module_is_written_when_nothing_is_mocked() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_source_string("plain", "X = 1\n")
    assert "_mock.py" not in records(buffer.getvalue())


# --- dependencies found in source ----------------------------------------------------------


def interned_after_saving(module: str, *patterns: str) -> list[str]:
    """Save ``module`` with every module under ``patterns`` interned; what got interned."""
    with PackageExporter(io.BytesIO()) as exporter:
        for pattern in patterns:
            exporter.intern(pattern)
        exporter.save_module(module)
    return exporter.interned_modules()


@pytest.fixture
def lib(source_tree: SourceTree) -> str:
    """A library for other packages to import: a subpackage, and a module with a function."""
    return source_tree(
        {
            "__init__.py": "",
            "sub/__init__.py": "",
            "sub/leaf.py": "",
            "util.py": "def helper():\n    pass\n",
            "plugin.py": "",
        }
    )


def test_import_a_b_depends_on_the_submodule(source_tree: SourceTree, lib: str) -> None:
    top = source_tree({"__init__.py": "", "main.py": f"import {lib}.sub.leaf\n"})
    assert f"{lib}.sub.leaf" in interned_after_saving(f"{top}.main", f"{lib}.**")


def test_from_a_import_submodule_depends_on_the_submodule(
    source_tree: SourceTree, lib: str
) -> None:
    top = source_tree({"__init__.py": "", "main.py": f"from {lib}.sub import leaf\n"})
    assert f"{lib}.sub.leaf" in interned_after_saving(f"{top}.main", f"{lib}.**")


def test_from_a_import_attribute_depends_on_the_module_only(
    source_tree: SourceTree, lib: str
) -> None:
    top = source_tree({"__init__.py": "", "main.py": f"from {lib}.util import helper\n"})
    with PackageExporter(io.BytesIO()) as exporter:
        exporter.intern(f"{lib}.**")
        exporter.save_module(f"{top}.main")
    assert f"{lib}.util" in exporter.interned_modules()
    assert f"{lib}.util.helper" not in exporter.dependency_graph_string()


def test_relative_imports_are_resolved_against_the_importing_package(
    source_tree: SourceTree,
) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "sibling.py": "S = 1\n",
            "sub/__init__.py": "",
            "sub/neighbour.py": "",
            "sub/main.py": "from . import neighbour\nfrom ..sibling import S\n",
        }
    )
    interned = interned_after_saving(f"{top}.sub.main", f"{top}.**")
    assert {f"{top}.sub.neighbour", f"{top}.sibling"} <= set(interned)


def test_importlib_import_module_with_a_constant_name_is_a_dependency(
    source_tree: SourceTree, lib: str
) -> None:
    main = f"import importlib\nPLUGIN = importlib.import_module({f'{lib}.plugin'!r})\n"
    top = source_tree({"__init__.py": "", "main.py": main})
    assert f"{lib}.plugin" in interned_after_saving(f"{top}.main", f"{lib}.**")


def test_dunder_import_with_a_constant_name_is_a_dependency(
    source_tree: SourceTree, lib: str
) -> None:
    top = source_tree({"__init__.py": "", "main.py": f"PLUGIN = __import__({f'{lib}.plugin'!r})\n"})
    assert f"{lib}.plugin" in interned_after_saving(f"{top}.main", f"{lib}.**")


def test_imports_under_type_checking_are_not_followed(source_tree: SourceTree) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "typeonly.py": "",
            "main.py": """
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from . import typeonly
            """,
        }
    )
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.deny(f"{top}.typeonly")
        exporter.intern(f"{top}.**")
        exporter.save_module(f"{top}.main")
    assert f"{top}.typeonly" not in exporter.dependency_graph_string()
    assert f"{top}/typeonly.py" not in records(buffer.getvalue())


# --- imports the environment lacks ------------------------------------------------------


@pytest.fixture
def optional_import(source_tree: SourceTree) -> str:
    return source_tree(
        {
            "__init__.py": "",
            "main.py": """
                try:
                    import not_installed_xyz
                except ImportError:
                    not_installed_xyz = None
            """,
        }
    )


def test_an_import_that_cannot_be_found_is_listed_as_missing_not_an_error(
    optional_import: str,
) -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_module(f"{optional_import}.main")
    assert exporter.missing_modules() == ["not_installed_xyz"]
    assert zipfile.is_zipfile(buffer)


def test_a_missing_import_is_logged_with_its_importer_when_debugging(
    optional_import: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="torchpkg"),
        PackageExporter(io.BytesIO(), debug=True) as exporter,
    ):
        exporter.save_module(f"{optional_import}.main")
    [record] = [r for r in caplog.records if r.name == "torchpkg"]
    assert record.levelno == logging.WARNING
    assert "not_installed_xyz" in record.getMessage()
    assert f"{optional_import}.main" in record.getMessage()


def test_a_missing_import_is_not_logged_without_debug(
    optional_import: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="torchpkg"),
        PackageExporter(io.BytesIO()) as exporter,
    ):
        exporter.save_module(f"{optional_import}.main")
    assert [r for r in caplog.records if r.name == "torchpkg"] == []


# --- hooks ------------------------------------------------------------------------------


@pytest.fixture
def mixed(source_tree: SourceTree) -> str:
    """``main`` imports an interned helper twice over, an extern, a mock and json."""
    return source_tree(
        {
            "__init__.py": "",
            "helper.py": "import json\n",
            "ext.py": "",
            "fake.py": "",
            "main.py": """
                import json
                from . import helper, ext, fake
                from .helper import json as again
            """,
        }
    )


def configure_mixed(exporter: PackageExporter, top: str) -> None:
    exporter.extern(f"{top}.ext")
    exporter.mock(f"{top}.fake")
    exporter.intern(f"{top}.**")
    exporter.save_module(f"{top}.main")


@pytest.mark.parametrize(
    ("register", "expected"),
    [
        ("register_intern_hook", ["main", "helper"]),
        ("register_extern_hook", ["ext", "json"]),
        ("register_mock_hook", ["fake"]),
    ],
)
def test_a_hook_is_called_once_per_module_with_the_exporter_and_the_module_name(
    mixed: str, register: str, expected: list[str]
) -> None:
    calls: list[tuple[PackageExporter, str]] = []
    with PackageExporter(io.BytesIO()) as exporter:
        getattr(exporter, register)(lambda exp, name: calls.append((exp, name)))
        configure_mixed(exporter, mixed)
    names = [name if name == "json" else f"{mixed}.{name}" for name in expected]
    assert collections.Counter(name for _, name in calls) == collections.Counter(names)
    assert all(exp is exporter for exp, _ in calls)


def test_hooks_run_at_close_not_while_saving(mixed: str) -> None:
    calls: list[str] = []
    exporter = PackageExporter(io.BytesIO())
    exporter.register_intern_hook(lambda _, name: calls.append(name))
    configure_mixed(exporter, mixed)
    assert calls == []
    exporter.close()
    assert calls != []


def test_hooks_do_not_run_when_the_export_fails(mixed: str) -> None:
    calls: list[str] = []
    exporter = PackageExporter(io.BytesIO())
    exporter.register_intern_hook(lambda _, name: calls.append(name))
    exporter.deny(f"{mixed}.helper")
    configure_mixed(exporter, mixed)
    with pytest.raises(PackagingError):
        exporter.close()
    assert calls == []


def test_a_removed_hook_is_not_called(mixed: str) -> None:
    calls: list[str] = []
    with PackageExporter(io.BytesIO()) as exporter:
        handle = exporter.register_extern_hook(lambda _, name: calls.append(name))
        assert isinstance(handle, RemovableHandle)
        handle.remove()
        configure_mixed(exporter, mixed)
    assert calls == []


def test_a_hook_handle_used_as_a_context_manager_removes_the_hook_on_exit(mixed: str) -> None:
    calls: list[str] = []
    kept: list[str] = []
    with PackageExporter(io.BytesIO()) as exporter:
        exporter.register_mock_hook(lambda _, name: kept.append(name))
        with exporter.register_mock_hook(lambda _, name: calls.append(name)):
            pass
        configure_mixed(exporter, mixed)
    assert calls == []
    assert kept == [f"{mixed}.fake"]


def test_several_hooks_of_one_kind_all_run_in_registration_order(mixed: str) -> None:
    calls: list[str] = []
    with PackageExporter(io.BytesIO()) as exporter:
        exporter.register_mock_hook(lambda _, name: calls.append(f"first {name}"))
        exporter.register_mock_hook(lambda _, name: calls.append(f"second {name}"))
        configure_mixed(exporter, mixed)
    assert calls == [f"first {mixed}.fake", f"second {mixed}.fake"]


# --- graph queries ----------------------------------------------------------------------


def test_dependency_graph_string_is_dot_with_one_edge_per_import(chain: str) -> None:
    with PackageExporter(io.BytesIO()) as exporter:
        exporter.intern(f"{chain}.**")
        exporter.save_module(f"{chain}.a")
    dot = exporter.dependency_graph_string()
    assert dot.startswith("digraph")
    assert f'"{chain}.a" -> "{chain}.b";' in dot
    assert f'"{chain}.b" -> "{chain}.c";' in dot
    assert f'"{chain}.d" -> "json";' in dot


def test_a_pickle_is_a_node_of_the_dependency_graph(shapes: str) -> None:
    point = importlib.import_module(f"{shapes}.shapes").Point(1, 2)
    with PackageExporter(io.BytesIO()) as exporter:
        exporter.intern(f"{shapes}.**")
        exporter.save_pickle("data", "point.pkl", point)
    edge = f'"{pickle_node("data", "point.pkl")}" -> "{shapes}.shapes";'
    assert edge in exporter.dependency_graph_string()


def test_all_paths_keeps_only_the_edges_on_a_path_between_the_two_modules(chain: str) -> None:
    with PackageExporter(io.BytesIO()) as exporter:
        exporter.intern(f"{chain}.**")
        exporter.save_module(f"{chain}.a")
    dot = exporter.all_paths(f"{chain}.a", f"{chain}.c")
    assert f'"{chain}.a" -> "{chain}.b";' in dot
    assert f'"{chain}.b" -> "{chain}.c";' in dot
    assert f"{chain}.d" not in dot
    assert "json" not in dot


def test_get_rdeps_lists_the_direct_dependents_of_a_module(mixed: str) -> None:
    with PackageExporter(io.BytesIO()) as exporter:
        configure_mixed(exporter, mixed)
    assert sorted(exporter.get_rdeps("json")) == sorted([f"{mixed}.main", f"{mixed}.helper"])
    assert exporter.get_rdeps(f"{mixed}.fake") == [f"{mixed}.main"]


def test_module_lists_report_what_each_module_became(mixed: str) -> None:
    exporter = PackageExporter(io.BytesIO())
    exporter.deny(f"{mixed}.helper")
    configure_mixed(exporter, mixed)
    assert exporter.interned_modules() == [f"{mixed}.main"]
    assert sorted(exporter.externed_modules()) == sorted(["json", f"{mixed}.ext"])
    assert exporter.mocked_modules() == [f"{mixed}.fake"]
    assert exporter.denied_modules() == [f"{mixed}.helper"]
    with pytest.raises(PackagingError):
        exporter.close()


def test_pickles_are_not_listed_as_interned_modules(shapes: str) -> None:
    point = importlib.import_module(f"{shapes}.shapes").Point(1, 2)
    with PackageExporter(io.BytesIO()) as exporter:
        exporter.intern(f"{shapes}.**")
        exporter.save_pickle("data", "point.pkl", point)
    assert exporter.interned_modules() == [f"{shapes}.shapes"]


# --- problems -----------------------------------------------------------------------------


def test_dependency_problems_are_raised_at_close_not_when_they_are_found() -> None:
    exporter = PackageExporter(io.BytesIO())
    exporter.add_dependency("no_such_module_anywhere")
    exporter.save_text("data", "still.txt", "saving still works")
    with pytest.raises(PackagingError):
        exporter.close()


def test_an_object_that_cannot_be_pickled_raises_from_save_pickle() -> None:
    exporter = PackageExporter(io.BytesIO())
    with pytest.raises(TypeError, match=r"cannot pickle '_thread\.lock' object"):
        exporter.save_pickle("data", "lock.pkl", threading.Lock())
    exporter.close()  # the export is still whole


def test_a_failed_save_pickle_writes_nothing_and_the_export_goes_on() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        with pytest.raises(TypeError):
            exporter.save_pickle("data", "lock.pkl", threading.Lock())
        exporter.save_pickle("data", "list.pkl", [1, 2])
    written = records(buffer.getvalue())
    assert "data/list.pkl" in written
    assert "data/lock.pkl" not in written


def save_a_lock(target: Path | io.BytesIO) -> None:
    with PackageExporter(target) as exporter:
        exporter.save_text("data", "a.txt", "written before the failure")
        exporter.save_pickle("data", "lock.pkl", threading.Lock())


def test_a_save_pickle_error_inside_the_with_block_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        save_a_lock(tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_save_pickle_error_carries_the_next_step_in_its_notes() -> None:
    with PackageExporter(io.BytesIO()) as exporter, pytest.raises(TypeError) as info:
        exporter.save_pickle("data", "lock.pkl", threading.Lock())
    assert info.value.__notes__ == [f"Next (UNPICKLABLE): {Reason.UNPICKLABLE.next_step}"]


def test_a_local_class_is_a_pickling_error_as_from_torch_packages_pickler() -> None:
    """The C pickler calls it an AttributeError; torch.package's Python pickler does not."""

    class Local:
        pass

    with (
        PackageExporter(io.BytesIO()) as exporter,
        pytest.raises(pickle.PicklingError, match="local object"),
    ):
        exporter.save_pickle("data", "local.pkl", Local())


def test_with_collect_errors_pickling_problems_are_raised_at_close_with_the_others() -> None:
    exporter = PackageExporter(io.BytesIO(), collect_errors=True)
    exporter.add_dependency("no_such_module_anywhere")
    exporter.save_pickle("data", "lock.pkl", threading.Lock())
    exporter.save_text("data", "still.txt", "saving still works")
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert list(info.value.by_reason()) == [Reason.UNPICKLABLE, Reason.MODULE_NOT_FOUND]


def test_collect_errors_is_off_by_default_and_kept_on_the_exporter() -> None:
    with PackageExporter(io.BytesIO()) as default:
        assert default.collect_errors is False
    with PackageExporter(io.BytesIO(), collect_errors=True) as collecting:
        assert collecting.collect_errors is True


def test_a_denied_module_is_reported_with_the_pattern_that_denied_it(chain: str) -> None:
    error = error_when_c_is_denied(chain)
    [problem] = error.by_reason()[Reason.DENIED]
    assert problem.subject == f"{chain}.c"
    assert problem.context is None  # torch.package prints no Context line for it
    assert problem.detail == f"denied by deny(['{chain}.c'])"
    assert f"{chain}.c: denied by deny(['{chain}.c'])" in error.__notes__


def test_a_module_no_rule_matches_is_a_no_action_problem(chain: str) -> None:
    exporter = PackageExporter(io.BytesIO())
    exporter.save_module(f"{chain}.a")
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert sorted(subjects(info.value, Reason.NO_ACTION)) == sorted([f"{chain}.b", f"{chain}.d"])


def test_add_dependency_on_a_module_that_does_not_exist_is_module_not_found() -> None:
    exporter = PackageExporter(io.BytesIO())
    exporter.add_dependency("no_such_module_anywhere")
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert subjects(info.value, Reason.MODULE_NOT_FOUND) == ["no_such_module_anywhere"]


def ghost_class() -> type:
    """A class whose ``__module__`` names a module that does not exist."""
    module = f"ghost_module_{next(_ghost_ids)}"
    return type("Ghost", (), {"__module__": module})


def test_a_pickled_class_whose_module_does_not_exist_is_a_pickling_error() -> None:
    with (
        PackageExporter(io.BytesIO()) as exporter,
        pytest.raises(pickle.PicklingError, match="ghost_module_"),
    ):
        exporter.save_pickle("data", "ghost.pkl", ghost_class()())


def test_collected_a_pickled_class_whose_module_does_not_exist_is_module_not_found() -> None:
    ghost = ghost_class()
    exporter = PackageExporter(io.BytesIO(), collect_errors=True)
    exporter.save_pickle("data", "ghost.pkl", ghost())
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert list(info.value.by_reason()) == [Reason.MODULE_NOT_FOUND]
    assert subjects(info.value, Reason.MODULE_NOT_FOUND) == [ghost.__module__]


def test_collected_a_pickled_class_whose_module_was_removed_is_module_not_found(
    shapes: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point = importlib.import_module(f"{shapes}.shapes").Point(1, 2)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path / "src")])
    del sys.modules[f"{shapes}.shapes"], sys.modules[shapes]
    exporter = PackageExporter(io.BytesIO(), collect_errors=True)
    exporter.intern(f"{shapes}.**")
    exporter.save_pickle("data", "point.pkl", point)
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert list(info.value.by_reason()) == [Reason.MODULE_NOT_FOUND]
    assert subjects(info.value, Reason.MODULE_NOT_FOUND) == [f"{shapes}.shapes"]


def test_save_module_of_a_c_extension_is_an_extension_module_problem() -> None:
    pytest.importorskip("numpy")
    extension = "numpy._core._multiarray_umath"  # numpy >= 2; 1.x has numpy.core.
    if extension not in sys.modules:
        extension = "numpy.core._multiarray_umath"
    exporter = PackageExporter(io.BytesIO())
    exporter.save_module(extension)
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert subjects(info.value, Reason.IS_EXTENSION_MODULE) == [extension]


class WithLambda:
    def __init__(self) -> None:
        self.callback = lambda x: x


class WithLock:
    def __init__(self) -> None:
        self.lock = threading.Lock()


@pytest.mark.parametrize("make", [WithLambda, WithLock, threading.Lock], ids=lambda f: f.__name__)
def test_collected_an_object_that_cannot_be_pickled_is_an_unpicklable_problem(
    make: Callable[[], object],
) -> None:
    exporter = PackageExporter(io.BytesIO(), collect_errors=True)
    exporter.extern(__name__)
    exporter.save_pickle("data", "bad.pkl", make())
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert subjects(info.value, Reason.UNPICKLABLE) == [pickle_node("data", "bad.pkl")]
    assert list(info.value.by_reason()) == [Reason.UNPICKLABLE]


def test_a_mocked_module_a_pickle_needs_is_mocked_but_still_used(shapes: str) -> None:
    point = importlib.import_module(f"{shapes}.shapes").Point(1, 2)
    exporter = PackageExporter(io.BytesIO())
    exporter.mock(f"{shapes}.shapes")
    exporter.save_pickle("data", "point.pkl", point)
    with pytest.raises(PackagingError) as info:
        exporter.close()
    [problem] = info.value.by_reason()[Reason.MOCKED_BUT_STILL_USED]
    assert problem.subject == f"{shapes}.shapes"
    assert problem.context == (
        f"Object(s) '['Point']' from module `{shapes}.shapes` was mocked out during packaging "
        "but is being used in resource - `point.pkl` in package `data`. "
    )


def test_problems_of_every_kind_are_raised_together_as_one_error_grouped_by_reason(
    chain: str, shapes: str
) -> None:
    point = importlib.import_module(f"{shapes}.shapes").Point(1, 2)
    exporter = PackageExporter(io.BytesIO(), collect_errors=True)
    exporter.deny(f"{chain}.c")
    exporter.mock(f"{shapes}.shapes")
    exporter.intern(f"{chain}.**")
    exporter.extern("nothing_is_called_this", allow_empty=False)
    exporter.save_module(f"{chain}.a")
    exporter.add_dependency("no_such_module_anywhere")
    exporter.add_dependency("sys")
    exporter.save_pickle("data", "lock.pkl", threading.Lock())
    exporter.save_pickle("data", "point.pkl", point)
    with pytest.raises(PackagingError) as info:
        exporter.close()
    error = info.value
    expected = {
        Reason.DENIED: f"{chain}.c",
        Reason.MOCKED_BUT_STILL_USED: f"{shapes}.shapes",
        Reason.NO_ACTION: "sys",
        Reason.MODULE_NOT_FOUND: "no_such_module_anywhere",
        Reason.UNPICKLABLE: pickle_node("data", "lock.pkl"),
        Reason.EMPTY_MATCH: "extern(['nothing_is_called_this'])",
    }
    assert type(error) is PackagingError
    for reason, subject in expected.items():
        assert subjects(error, reason) == [subject], reason
    sections = problem_sections(str(error))
    for reason, subject in expected.items():
        if reason is not Reason.EMPTY_MATCH:  # torch.package's message leaves them out
            assert subject in sections[reason.value], reason


def test_the_error_notes_say_what_to_do_next_for_each_reason(chain: str) -> None:
    exporter = PackageExporter(io.BytesIO())
    exporter.deny(f"{chain}.c")
    exporter.save_module(f"{chain}.b")
    exporter.add_dependency("no_such_module_anywhere")
    with pytest.raises(PackagingError) as info:
        exporter.close()
    notes = info.value.__notes__
    assert f"Next (DENIED): {Reason.DENIED.next_step}" in notes
    assert f"Next (MODULE_NOT_FOUND): {Reason.MODULE_NOT_FOUND.next_step}" in notes
    assert "Next" not in str(info.value)


def test_a_reason_of_torchpkgs_own_is_written_in_torch_packages_format() -> None:
    exporter = PackageExporter(io.BytesIO())
    exporter.add_dependency("no_such_module_anywhere")
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert str(info.value) == (
        f"\n* {Reason.MODULE_NOT_FOUND.value}\n    no_such_module_anywhere\n\n"
        "Set debug=True when invoking PackageExporter for a visualization of where broken "
        "modules are coming from!\n"
    )


def test_debug_adds_the_import_chain_that_pulled_in_each_module(chain: str) -> None:
    error = error_when_c_is_denied(chain, debug=True)
    assert f"A path to {chain}.c: {chain}.a -> {chain}.b -> {chain}.c" in str(error)


def test_without_debug_the_message_tells_how_to_see_the_import_chain(chain: str) -> None:
    error = error_when_c_is_denied(chain)
    assert "A path to" not in str(error)
    assert "debug=True" in str(error)


def test_allow_empty_failures_next_to_other_problems_are_part_of_one_packaging_error() -> None:
    exporter = PackageExporter(io.BytesIO())
    exporter.intern("nothing_is_called_this", allow_empty=False)
    exporter.add_dependency("no_such_module_anywhere")
    with pytest.raises(PackagingError) as info:
        exporter.close()
    assert not isinstance(info.value, EmptyMatchError)
    assert set(info.value.by_reason()) == {Reason.MODULE_NOT_FOUND, Reason.EMPTY_MATCH}
    assert "nothing_is_called_this" not in str(info.value)  # as torch.package's message
    assert any("intern(['nothing_is_called_this'])" in note for note in info.value.__notes__)


# --- a failed export leaves nothing behind ---------------------------------------------


def failing_export(target: Path | io.BytesIO) -> None:
    """An export that saves a record, then fails at close (a module that does not exist)."""
    with PackageExporter(target) as exporter:
        exporter.save_text("data", "a.txt", "written before the failure")
        exporter.add_dependency("no_such_module_anywhere")


def test_a_failed_export_to_a_path_leaves_no_file_behind(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(PackagingError):
        failing_export(folder / "model.pt")
    assert list(folder.iterdir()) == []


def test_a_failed_export_leaves_an_existing_target_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "model.pt"
    target.write_bytes(b"the previous package")
    with pytest.raises(PackagingError):
        failing_export(target)
    assert target.read_bytes() == b"the previous package"
    assert list(folder.iterdir()) == [target]


def test_a_failed_export_to_a_file_object_writes_nothing_to_it() -> None:
    buffer = io.BytesIO()
    with pytest.raises(PackagingError):
        failing_export(buffer)
    assert buffer.getvalue() == b""


class Interrupted(Exception):
    pass


def interrupted_export(target: Path | io.BytesIO) -> None:
    with PackageExporter(target) as exporter:
        exporter.save_text("data", "a.txt", "x")
        raise Interrupted


def test_an_exception_inside_the_with_block_propagates_and_leaves_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(Interrupted):
        interrupted_export(folder / "model.pt")
    assert list(folder.iterdir()) == []


def test_an_exception_inside_the_with_block_writes_nothing_to_a_file_object() -> None:
    buffer = io.BytesIO()
    with pytest.raises(Interrupted):
        interrupted_export(buffer)
    assert buffer.getvalue() == b""


def test_a_successful_export_to_a_path_leaves_only_the_target_in_the_folder(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with PackageExporter(folder / "model.pt") as exporter:
        exporter.save_text("data", "a.txt", "x")
    assert list(folder.iterdir()) == [folder / "model.pt"]


def test_a_successful_export_replaces_an_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"the previous package")
    with PackageExporter(target) as exporter:
        exporter.save_text("data", "a.txt", "new")
    assert records(target, top="model")["data/a.txt"] == b"new"


# --- archive basics -------------------------------------------------------------------


def test_records_sit_under_a_top_folder_named_after_the_file_stem(tmp_path: Path) -> None:
    target = tmp_path / "my_model.pt"
    with PackageExporter(target) as exporter:
        exporter.save_text("data", "a.txt", "x")
    names = read_archive(target)
    assert names
    assert all(name.startswith("my_model/") for name in names)


def test_the_archive_declares_format_version_6() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer):
        pass
    assert records(buffer.getvalue())[".data/version"] == b"6\n"


def test_the_archive_records_the_python_version_that_wrote_it() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer):
        pass
    assert records(buffer.getvalue())[".data/python_version"] == platform.python_version().encode()


def test_extern_modules_lists_every_extern_one_per_line(mixed: str) -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        configure_mixed(exporter, mixed)
    text = records(buffer.getvalue())[".data/extern_modules"].decode()
    assert text.endswith("\n")
    assert sorted(text.splitlines()) == sorted(["json", f"{mixed}.ext"])


def test_an_export_with_no_externs_has_an_empty_extern_modules_record() -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_source_string("plain", "X = 1\n")
    assert records(buffer.getvalue())[".data/extern_modules"] == b""


def test_interned_sources_are_written_at_their_module_paths(chain: str) -> None:
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.intern(f"{chain}.**")
        exporter.save_module(chain)
        exporter.save_module(f"{chain}.a")
    archive = records(buffer.getvalue())
    folder = Path(importlib.import_module(chain).__file__ or "").parent
    for relative in ["__init__.py", "a.py", "b.py", "c.py", "d.py"]:
        assert archive[f"{chain}/{relative}"] == (folder / relative).read_bytes(), relative


# --- torch stays unimported -----------------------------------------------------------


def test_exporting_and_importing_plain_python_never_imports_torch(
    shapes: str, tmp_path: Path
) -> None:
    program = textwrap.dedent(
        f"""
        import io, sys
        from torchpkg import PackageExporter, PackageImporter
        from {shapes}.shapes import Point

        buffer = io.BytesIO()
        with PackageExporter(buffer) as exporter:
            exporter.intern("{shapes}.**")
            exporter.save_pickle("data", "point.pkl", {{"point": Point(1, 2), "n": [1.5]}})
        buffer.seek(0)
        loaded = PackageImporter(buffer).load_pickle("data", "point.pkl")
        assert (loaded["point"].x, loaded["point"].y, loaded["n"]) == (1, 2, [1.5]), loaded
        assert type(loaded["point"]) is not Point
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        """
    )
    paths = [str(tmp_path / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    result = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_source_edited_between_two_exports_is_exported_as_edited(
    source_tree: SourceTree,
) -> None:
    top = source_tree({"__init__.py": "", "mod.py": "VALUE = 1\n"})
    first, second = io.BytesIO(), io.BytesIO()
    with PackageExporter(first) as exporter:
        exporter.save_module(f"{top}.mod")
    source = Path(importlib.util.find_spec(f"{top}.mod").origin)  # type: ignore[union-attr,arg-type]
    source.write_text("VALUE = 2  # edited\nimport json\n")
    with PackageExporter(second) as exporter:
        exporter.save_module(f"{top}.mod")
        assert "json" in exporter.externed_modules()
    assert records(second.getvalue())[f"{top}/mod.py"].startswith(b"VALUE = 2")
