"""Peak RSS of a fresh process that loads the large model and does not touch it,
and how far exporting the large model raises the peak of the process that holds it.

Linux records the RSS high-water mark of the memory a process leaves at
``exec``; a child spawned (vfork) by this process, which holds the model, would
report at least this process's peak. So a small launcher process spawns each
child, waits for it with ``os.wait4`` and prints the child's ``ru_maxrss``.
The figure reported is the child's peak minus that of a child that only
imported torch (the median of ``rss_rounds`` such children), as a fraction of
the model's bytes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from bench._child import BASELINE
from bench.core import MODEL_FRACTION, Session, rotate
from bench.models import model_bytes
from bench.peers import Format

__all__ = ["EXPORT_PHASE", "PHASE", "loader_child", "peak_rss", "run_rss"]

PHASE = "load peak RSS"
EXPORT_PHASE = "export peak RSS"

_LAUNCHER = """\
import os, sys
pid = os.posix_spawn(sys.executable, [sys.executable, *sys.argv[1:]], os.environ)
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""

_CHILD = """\
import sys
sys.path[:0] = {paths!r}
from bench import _child
_child.{function}(sys.argv[1:])
"""


def peak_rss(python_args: Sequence[str]) -> int:
    """Peak RSS in bytes of a fresh ``python *python_args``, measured by a launcher."""
    argv = [sys.executable, "-c", _LAUNCHER, *python_args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"the child {python_args[-2:]} failed (exit {done.returncode}):\n{done.stderr}"
        )
    return int(done.stdout.split()[-1]) * 1024  # ru_maxrss is in KiB on Linux


def loader_child(loader: str, path: Path | None, import_paths: Sequence[str]) -> list[str]:
    """Arguments of a Python that imports torch, loads ``path`` with ``loader`` and exits."""
    return ["-c", _CHILD.format(paths=list(import_paths), function="main"), loader, str(path)]


def export_peak(
    session: Session, fmt: Format, model: nn.Module, path: Path, import_paths: Sequence[str]
) -> int:
    """How far exporting the large model raises a fresh process's peak RSS, in bytes."""
    size = (str(session.config.large_layers), str(session.config.large_dim))
    code = _CHILD.format(paths=list(import_paths), function="export")
    argv = [sys.executable, "-c", code, fmt.name, type(model).__module__, *size]
    done = subprocess.run([*argv, str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"exporting with {fmt.name} failed (exit {done.returncode}):\n{done.stderr}"
        )
    return int(done.stdout.split()[-1])


def run_rss(session: Session, model: nn.Module, formats: Sequence[Format]) -> None:
    config, results = session.config, session.results
    nbytes = model_bytes(model)
    # The child imports bench from this checkout and the model's generated module.
    import_paths = [str(Path(__file__).resolve().parent.parent), str(session.src)]
    session.log("rss: baseline children (import torch)")
    baseline_child = loader_child(BASELINE, None, import_paths)
    baselines = [peak_rss(baseline_child) for _ in range(config.rss_rounds)]
    baseline = statistics.median(baselines)
    results.note(
        "rss",
        model_bytes=nbytes,
        baseline_peak_rss_bytes=baselines,
        note="peak RSS above an `import torch` child, untouched tensors",
    )
    for fmt in [fmt for fmt in formats if fmt.loaders]:
        session.log(f"rss: {fmt.name}")
        path = session.path(f"rss{fmt.suffix}")
        fmt.save(model, path)
        for round_ in range(config.rss_rounds):
            for loader in rotate(fmt.loaders, round_):
                peak = peak_rss(loader_child(loader.name, path, import_paths))
                results.add("rss", PHASE, loader.name, (peak - baseline) / nbytes, MODEL_FRACTION)
        path.unlink()
    for round_ in range(config.rss_rounds):
        for fmt in rotate(formats, round_):
            session.log(f"rss: exporting with {fmt.name}")
            path = session.path(f"rss-export{fmt.suffix}")
            raised = export_peak(session, fmt, model, path, import_paths)
            results.add("rss", EXPORT_PHASE, fmt.name, raised / nbytes, MODEL_FRACTION)
            path.unlink(missing_ok=True)
