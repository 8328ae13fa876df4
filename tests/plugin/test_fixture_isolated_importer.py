"""The `isolated_importer` fixture: packages whose modules are gone after the test.

torch-free: the packaged objects are plain Python, so these tests run on
every Python version.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

RunPytest = Callable[..., pytest.RunResult]

POINT = """
    from dataclasses import dataclass


    @dataclass
    class Point:
        x: int
        y: int
"""
# Requested before isolated_importer, so its teardown runs after the importer's.
NO_MANGLED_MODULES_AFTER = """
    import sys

    import pytest


    @pytest.fixture
    def no_packaged_modules_after():
        before = set(sys.modules)
        yield
        left = [name for name in set(sys.modules) - before if name.startswith("<torch_package")]
        assert not left
"""
ARCHIVE_MAKER = """
    import io

    from torchpkg import PackageExporter

    from geometry import Point


    def archive_bytes():
        buffer = io.BytesIO()
        with PackageExporter(buffer) as exporter:
            exporter.intern("geometry")
            exporter.save_pickle("shapes", "point.pkl", Point(1, 2))
        return buffer.getvalue()
"""


@pytest.fixture
def geometry(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(geometry=POINT, archives=ARCHIVE_MAKER)
    pytester.makeconftest(NO_MANGLED_MODULES_AFTER)


@pytest.mark.usefixtures("geometry")
@pytest.mark.parametrize(
    "source",
    [
        "archive_bytes()",
        "io.BytesIO(archive_bytes())",
        "write(tmp_path / 'point.pt')",
        "str(write(tmp_path / 'point.pt'))",
    ],
    ids=["bytes", "file-object", "path", "str"],
)
def test_it_opens_an_archive(run_pytest: RunPytest, pytester: pytest.Pytester, source: str) -> None:
    pytester.makepyfile(
        f"""
        import io

        from archives import archive_bytes


        def write(path):
            path.write_bytes(archive_bytes())
            return path


        def test_opens(no_packaged_modules_after, isolated_importer, tmp_path):
            importer = isolated_importer({source})
            point = importer.load_pickle("shapes", "point.pkl")
            assert (point.x, point.y) == (1, 2)
            assert type(point).__module__ == importer.id() + ".geometry"
        """
    )
    run_pytest().assert_outcomes(passed=1)


@pytest.mark.usefixtures("geometry")
def test_it_exports_an_object_and_loads_it_back(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        from pytest_torchpkg import ISOLATED_PACKAGE, ISOLATED_RESOURCE

        from geometry import Point


        def test_exports(no_packaged_modules_after, isolated_importer):
            importer = isolated_importer(Point(3, 4))
            clone = importer.load_pickle(ISOLATED_PACKAGE, ISOLATED_RESOURCE)
            assert (clone.x, clone.y) == (3, 4)
            assert type(clone) is not Point
        """
    )
    run_pytest().assert_outcomes(passed=1)


@pytest.mark.usefixtures("geometry")
def test_each_call_gives_a_fresh_importer(run_pytest: RunPytest, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from archives import archive_bytes


        def test_two_importers(no_packaged_modules_after, isolated_importer):
            first = isolated_importer(archive_bytes())
            second = isolated_importer(archive_bytes())
            assert first.id() != second.id()
            assert first.import_module("geometry") is not second.import_module("geometry")
        """
    )
    run_pytest().assert_outcomes(passed=1)


@pytest.mark.usefixtures("geometry")
def test_modules_an_importer_leaves_behind_fail_the_test_at_teardown(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        from torchpkg import PackageImporter

        from archives import archive_bytes


        def test_leaky(no_packaged_modules_after, monkeypatch, isolated_importer):
            monkeypatch.setattr(PackageImporter, "close", lambda self: None)
            isolated_importer(archive_bytes()).import_module("geometry")
        """
    )
    result = run_pytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["closed importers left their modules in sys.modules: *'<torch_package_*>.geometry'*"]
    )


@pytest.mark.usefixtures("geometry")
def test_export_options_with_an_archive_are_a_type_error(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import pytest

        from archives import archive_bytes


        def test_options(isolated_importer):
            with pytest.raises(TypeError, match="apply to an object to export, not an archive"):
                isolated_importer(archive_bytes(), extern="numpy.**")
        """
    )
    run_pytest().assert_outcomes(passed=1)
