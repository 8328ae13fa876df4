"""The child process of the peak-RSS workload: import torch, load, do not touch.

Kept free of heavy imports: the baseline child imports this module and torch only.
"""

from __future__ import annotations

import sys
from pathlib import Path

BASELINE = "import torch"


def main(argv: list[str]) -> None:
    loader_name, path = argv
    import torch  # noqa: F401 - the baseline is a process that imported torch

    if loader_name == BASELINE:
        return
    from bench.peers import loader_named, tensors_of

    loaded = loader_named(loader_name).load(Path(path))
    found = bool(tensors_of(loaded.obj))  # finds the tensors without reading them
    loaded.close()
    if not found:
        sys.exit(f"{loader_name} loaded no tensors from {path}")
