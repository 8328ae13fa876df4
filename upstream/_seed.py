"""A pytest plugin (``-p upstream._seed``): seed every test from its node id.

Some suites draw unseeded random numbers, so a test may fail in one run and
pass in the next; the harness compares outcomes across runs, so each test
starts from the same seeds in every run: ``random``, numpy and torch, seeded
with a stable hash of the node id before the test's fixtures are set up.
numpy and torch are seeded only where they are imported already or importable.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import random
import sys

import pytest

__all__ = ["seed_everything", "seed_for"]


def seed_for(nodeid: str) -> int:
    """A 32-bit seed from the node id, the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(nodeid.encode()).digest()[:4], "little")


def _available(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    if _available("numpy"):
        importlib.import_module("numpy").random.seed(seed)
    if _available("torch"):
        importlib.import_module("torch").manual_seed(seed)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    seed_everything(seed_for(item.nodeid))
