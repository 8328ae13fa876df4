"""Which tool writes an archive and which one reads it, for the tests in tests/compat
that cross over between torchpkg and torch.package (the oracle: only tests/compat may
use it). Import it only after ``pytest.importorskip("torch")``."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch.package as tp

import torchpkg


class Direction(NamedTuple):
    """Which tool writes the archive and which one reads it."""

    exporter: type[Any]
    importer: type[Any]


CROSSINGS = {
    "torchpkg-to-torch": Direction(torchpkg.PackageExporter, tp.PackageImporter),
    "torch-to-torchpkg": Direction(tp.PackageExporter, torchpkg.PackageImporter),
}
