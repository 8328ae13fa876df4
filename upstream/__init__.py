"""The real suites: run third-party libraries' own test suites under the torchpkg gate.

``python -m upstream fetch`` downloads and installs each pinned library (sdist,
editable); ``python -m upstream run`` runs each suite three times (plain, gate,
report) and compares the outcomes test by test. See :mod:`upstream.suites`.
"""

from __future__ import annotations

from upstream.suites import SUITES, Suite

__all__ = ["SUITES", "Suite"]
