"""Fixtures: ``package_roundtrip`` checks a model inside a test; ``isolated_importer``
opens packages whose modules are gone from ``sys.modules`` after the test."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import pytest

from pytest_torchpkg.plugin import RECORDER, options_for, run_roundtrip
from torchpkg import GlobPattern, PackageExporter, PackageImporter

if TYPE_CHECKING:
    from torchpkg.roundtrip import RoundtripResult

__all__ = [
    "ISOLATED_PACKAGE",
    "ISOLATED_RESOURCE",
    "IsolatedImporter",
    "PackageRoundtrip",
    "isolated_importer",
    "package_roundtrip",
]

# Where ``isolated_importer`` saves an object it exports: load it back with
# ``importer.load_pickle(ISOLATED_PACKAGE, ISOLATED_RESOURCE)``.
ISOLATED_PACKAGE: Final = "isolated"
ISOLATED_RESOURCE: Final = "object.pkl"


class PackageRoundtrip(Protocol):
    def __call__(
        self, model: Any, *inputs: Any, check: bool = True, **options: Any
    ) -> RoundtripResult:
        """Round-trip ``model`` on ``inputs``; raise ``RoundtripFailure`` unless it survives.

        ``options`` are those of ``torchpkg.roundtrip.roundtrip`` (``kwargs``,
        ``extern``, ``mock``, ``intern``, ``rtol``, ``atol``, ...) and replace
        the defaults from the ini file and the test's ``torchpkg`` markers.
        With ``check=False`` the result is returned without raising.
        """
        ...


class IsolatedImporter(Protocol):
    def __call__(
        self,
        source: Any,
        /,
        *,
        extern: GlobPattern = (),
        mock: GlobPattern = (),
        intern: GlobPattern = (),
    ) -> PackageImporter:
        """A fresh importer of ``source``: an archive (path, bytes, binary file object) or
        an object to export first, with the rules ``roundtrip()`` uses: ``mock``,
        ``extern``, ``intern``, test tooling extern, then the policy by provenance
        (the repository's code interned, installed distributions extern)."""
        ...


@pytest.fixture
def package_roundtrip(request: pytest.FixtureRequest) -> PackageRoundtrip:
    """Round-trip a model through a package and compare outputs; see ``PackageRoundtrip``."""
    item = cast(pytest.Item, request.node)  # a function-scoped fixture's node is the test

    def check_model(
        model: Any, *inputs: Any, check: bool = True, **options: Any
    ) -> RoundtripResult:
        defaults = options_for(item).as_kwargs()
        recorder = item.stash.get(RECORDER, None)
        with recorder.suspended() if recorder is not None else nullcontext():
            result = run_roundtrip(item, model, *inputs, **{**defaults, **options})
        if check:
            result.raise_for_failure()
        return result

    return check_model


@pytest.fixture
def isolated_importer(request: pytest.FixtureRequest) -> Iterator[IsolatedImporter]:
    """Open packages for the test; at teardown close them and check their modules are gone."""
    importers: list[PackageImporter] = []

    def open_package(
        source: Any,
        /,
        *,
        extern: GlobPattern = (),
        mock: GlobPattern = (),
        intern: GlobPattern = (),
    ) -> PackageImporter:
        if not isinstance(source, (bytes, str, os.PathLike)) and not hasattr(source, "read"):
            source = _export(source, extern, mock, intern, request.config.rootpath)
        elif extern or mock or intern:
            raise TypeError("extern, mock and intern apply to an object to export, not an archive")
        elif isinstance(source, bytes):
            source = io.BytesIO(source)
        importer = PackageImporter(source)
        importers.append(importer)
        return importer

    yield open_package
    left = []
    for importer in reversed(importers):
        importer.close()
        parent = importer.id()
        left += [name for name in sys.modules if name.split(".", 1)[0] == parent]
    for name in left:
        del sys.modules[name]
    if left:
        pytest.fail(f"closed importers left their modules in sys.modules: {left}", pytrace=False)


def _export(
    obj: Any, extern: GlobPattern, mock: GlobPattern, intern: GlobPattern, root: Path
) -> io.BytesIO:
    from torchpkg.roundtrip._export import Rules, patterns

    rules = Rules(patterns(mock), patterns(extern), patterns(intern), (str(root),))
    buffer = io.BytesIO()
    # One PackagingError with every problem of the object, as the roundtrip reports them.
    with PackageExporter(buffer, collect_errors=True) as exporter:
        rules.apply(exporter)
        exporter.save_pickle(ISOLATED_PACKAGE, ISOLATED_RESOURCE, obj)
    buffer.seek(0)
    return buffer
