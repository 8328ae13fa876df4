"""Running the torchpkg command line in a fresh interpreter, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Package:
    path: Path
    top: str  # the packaged top-level package
    sentinel: Path  # created if the packaged module `tripwire` is ever imported


CLI_IN_FRESH_INTERPRETER = """\
import sys
from torchpkg.cli import main
code = main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def run_cli(
    *args: str, pythonpath: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``torchpkg ARGS`` in a fresh interpreter; stderr ends saying whether torch was imported."""
    env = None if pythonpath is None else {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, "-c", CLI_IN_FRESH_INTERPRETER, *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=cwd,
        timeout=120,
    )
