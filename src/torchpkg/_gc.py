"""Garbage collection paused for a bulk operation that makes no cyclic garbage.

Building a syntax tree, pickling a model and unpickling one create tens of
thousands of objects that all stay alive until the operation ends (a tree, a
pickler's memo, the objects being rebuilt). Each automatic collection on the way
walks them again, ever more of them: for a model of 5,000 tensors that was a
quarter of its export. Reference counting frees what they drop; a cycle made
meanwhile waits for the next collection after.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused_collection"]


@contextlib.contextmanager
def paused_collection() -> Iterator[None]:
    """No automatic collection inside the block; back on after, if it was on before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
