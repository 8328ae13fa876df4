"""The child of the code workload: one export in a fresh interpreter, as a CI process runs it.

``python -m bench._code_child SRC WARM_UP PACKAGE ARCHIVE`` imports the models
of two generated packages from ``SRC``, exports ``WARM_UP``'s untimed (the
tool's own imports, as the parent's warm-up does), then times ``PACKAGE``'s and
prints the seconds. ``TORCHPKG_CACHE_DIR`` says which scan cache it finds.
"""

from __future__ import annotations

import gc
import importlib
import json
import sys
from functools import partial
from pathlib import Path

from bench.core import timed
from bench.peers import torchpkg_export


def main(argv: list[str]) -> None:
    src, warm_up, package, archive = argv
    sys.path.insert(0, src)
    path = Path(archive)
    seconds = 0.0
    for name in (warm_up, package):
        model = importlib.import_module(f"{name}.model").Net()
        gc.collect()
        gc.freeze()  # as the parent does: what is alive now is never garbage
        _, seconds = timed(partial(torchpkg_export, model, path))
        path.unlink()
    print(json.dumps(seconds))


if __name__ == "__main__":
    main(sys.argv[1:])
