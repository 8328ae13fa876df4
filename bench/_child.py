"""The child processes of the peak-RSS workload.

``main``: import torch, load, do not touch. ``export``: build the large model,
then export it, and print how far the export raised the peak RSS above what the
process held before it (torch and the model). Kept free of heavy imports: the
baseline child imports this module and torch only.
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


def export(argv: list[str]) -> None:
    format_name, module_name, layers, dim, path = argv
    import importlib

    from bench.peers import FORMATS

    model = importlib.import_module(module_name).Large(int(layers), int(dim))
    (fmt,) = [fmt for fmt in FORMATS if fmt.name == format_name]
    before = _reset_peak()
    fmt.save(model, Path(path))
    print(_status("VmHWM") - before)


def _reset_peak() -> int:
    """Reset the RSS high-water mark to the RSS now (Linux 4.0+), and return it."""
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")
    return _status("VmHWM")


def _status(field: str) -> int:
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")
