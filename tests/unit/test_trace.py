"""The tracer behind the gate's path checks: sys.monitoring on 3.12+, sys.settrace on 3.11.

Torch-free, so the torch-free Python versions run it with their own mechanism.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import pytest

from torchpkg.roundtrip._trace import trace

SourceTree = Callable[..., str]


def test_the_lines_of_the_files_asked_for_are_traced_once_in_order(
    source_tree: SourceTree,
) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "steps.py": "def run(n):\n    total = 0\n    for i in range(n):\n"
            "        total += i\n    return total\n",
        }
    )
    steps = importlib.import_module(f"{top}.steps")
    with trace(lambda file, packaged: "steps" if file == steps.__file__ else None) as traced:
        assert steps.run(3) == 3
    assert traced.available
    assert traced.outside_lines == [("steps", 2), ("steps", 3), ("steps", 4), ("steps", 5)]
    assert steps.__file__ in traced.files


def test_functions_passed_as_inputs_are_not_traced(source_tree: SourceTree) -> None:
    top = source_tree({"__init__.py": "", "cb.py": "def callback(x):\n    return x + 1\n"})
    cb = importlib.import_module(f"{top}.cb")
    with trace(
        lambda file, packaged: file if file == cb.__file__ else None, (cb.callback,)
    ) as traced:
        cb.callback(1)
    assert traced.outside_lines == []


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="sys.monitoring shares the machine")
def test_nothing_is_traced_while_another_tracer_holds_the_hook() -> None:
    sys.settrace(lambda *args: None)
    try:
        with trace(lambda file, packaged: file) as traced:
            pass
    finally:
        sys.settrace(None)
    assert not traced.available
