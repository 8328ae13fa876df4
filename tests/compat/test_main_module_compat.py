"""A class defined in ``__main__``: torch.package cannot package it (pytorch#60090), torchpkg can.

torch.package treats ``__main__`` as a module like any other: no rule matches
it, and interned it is the script's whole file (a notebook or ``python -c``
has none). torchpkg packages the class from its statement into a module of
the archive, which torch.package's importer loads too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _main_programs import Main

pytest.importorskip("torch")

PROGRAM = """
import sys
import {tool} as package


class Doubler:
    def double(self, x):
        return 2 * x


try:
    with package.PackageExporter(sys.argv[1]) as exporter:
        exporter.{rule}
        exporter.save_pickle("main", "obj.pkl", Doubler())
    print("exported")
except package.PackagingError as error:
    print(str(error).strip().splitlines()[:2])
"""


def export(directory: Path, tool: str, rule: str, how: str) -> str:
    """What PROGRAM prints, run as ``how`` says with ``tool``'s PackageExporter."""
    program = PROGRAM.format(tool=tool, rule=rule)
    return Main(directory).run(program, how, str(directory / "main.pt"))


def test_a_class_defined_in_a_script_is_an_undeclared_module_to_torch_package(
    tmp_path: Path,
) -> None:
    rule = "extern('torch.**')"
    assert export(tmp_path, "torch.package", rule, "script") == str(
        [
            "* Module did not match against any action pattern. Extern, mock, or intern it.",
            "    __main__",
        ]
    )
    assert export(tmp_path, "torchpkg", rule, "script") == "exported"


def test_interning_main_fails_in_torch_package_where_it_has_no_file(tmp_path: Path) -> None:
    rule = "intern('__main__')"
    assert export(tmp_path, "torch.package", rule, "-c") == str(
        ["* Module had no __file__ defined.", "    __main__"]
    )
    assert export(tmp_path, "torchpkg", rule, "-c") == "exported"


def test_torch_package_loads_what_torchpkg_packaged_from_main(tmp_path: Path) -> None:
    assert export(tmp_path, "torchpkg", "extern('torch.**')", "script") == "exported"
    loaded = Main(tmp_path).run(
        "import sys, torch.package\n"
        "importer = torch.package.PackageImporter(sys.argv[1])\n"
        "print(importer.load_pickle('main', 'obj.pkl').double(21))\n",
        "-c",
        str(tmp_path / "main.pt"),
    )
    assert loaded == "42"
