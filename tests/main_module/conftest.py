"""The ``main`` fixture: programs run as ``__main__`` in a fresh interpreter."""

from __future__ import annotations

from pathlib import Path

import pytest

from _main_programs import Main


@pytest.fixture
def main(tmp_path: Path) -> Main:
    return Main(tmp_path)
