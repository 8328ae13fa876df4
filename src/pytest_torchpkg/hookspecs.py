"""Hooks other plugins and conftest files implement to extend the roundtrip.

Each hook receives the test ``item`` it runs for, and is called through the
item's hook proxy, so a ``conftest.py`` implementation applies only to the
tests under it. They run for the automatic roundtrips of
``--torchpkg-roundtrip`` and for the ``package_roundtrip`` fixture alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # importing the roundtrip core at run time may import torch
    from torchpkg import PackageExporter
    from torchpkg.roundtrip import Diagnostic, RoundtripResult

hookspec = pytest.hookspec  # the marker pytest itself uses for its hooks


@hookspec
def pytest_torchpkg_configure_exporter(exporter: PackageExporter, item: pytest.Item) -> None:
    """Add rules or hooks to ``exporter`` before the model is saved.

    Called after the policy from the ini keys, markers and fixture arguments
    was applied, e.g. to ``exporter.extern(...)`` a dependency for a whole
    directory of tests or to ``register_mock_hook`` for logging.
    """


@hookspec(firstresult=True)
def pytest_torchpkg_compare(original: Any, clone: Any, item: pytest.Item) -> Diagnostic | None:
    """Compare the original's output with the clone's, instead of the built-in comparison.

    Implementing the hook replaces the built-in comparison for the tests it
    applies to. Return a ``Diagnostic`` (kind ``OUTPUT_MISMATCH``) when the
    outputs differ and ``None`` when they agree; the first ``Diagnostic``
    returned by any implementation wins.
    """


@hookspec
def pytest_torchpkg_roundtrip_result(result: RoundtripResult, item: pytest.Item) -> None:
    """Observe each finished roundtrip (to log it, collect metrics, ...)."""
