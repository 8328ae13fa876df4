"""Compiled packaged modules are shared: what one process compiled, another can reuse."""

from __future__ import annotations

import marshal
from typing import NoReturn

import pytest

from torchpkg import _importlib
from torchpkg._importlib import cache_code, cached_code, compiled

SOURCE = "VALUE = 41 + 1\n"


def never(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError("compiled again")


def test_code_handed_to_the_cache_is_relabelled_not_compiled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The clone worker's server hands each child's compiles to the children after it."""
    code = compile(SOURCE, "cachepkg/handed.py", "exec")
    cache_code(marshal.loads(marshal.dumps([(("cachepkg/handed.py", SOURCE), code)])))
    monkeypatch.setattr(_importlib, "compile", never, raising=False)
    relabelled = compiled(SOURCE, "cachepkg/handed.py", "<torch_package_7>.cachepkg/handed.py")
    assert relabelled.co_filename == "<torch_package_7>.cachepkg/handed.py"
    namespace: dict[str, object] = {}
    exec(relabelled, namespace)
    assert namespace["VALUE"] == 42


def test_what_was_compiled_is_listed_by_record_and_source() -> None:
    compiled(SOURCE, "cachepkg/listed.py", "<torch_package_8>.cachepkg/listed.py")
    assert ("cachepkg/listed.py", SOURCE) in {key for key, _ in cached_code()}
