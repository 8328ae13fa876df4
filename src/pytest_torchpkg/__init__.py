"""pytest-torchpkg: prove that a test suite's models survive packaging.

The plugin itself is ``pytest_torchpkg.plugin`` (the ``torchpkg`` entry point);
this package exports the fixtures' types for annotations::

    def test_packaged(package_roundtrip: PackageRoundtrip) -> None: ...
"""

from pytest_torchpkg.fixtures import (
    ISOLATED_PACKAGE,
    ISOLATED_RESOURCE,
    IsolatedImporter,
    PackageRoundtrip,
)

__all__ = ["ISOLATED_PACKAGE", "ISOLATED_RESOURCE", "IsolatedImporter", "PackageRoundtrip"]
