"""The intern-library workload: GPT-2 exported with transformers interned, and loaded back.

Each round is a new process (``python -m bench.intern_library``) with an empty
``TORCHPKG_CACHE_DIR``, so the first export is a true first: no scan or source
cache, and an empty materialisation cache for the load. torch.package is timed
on export only: it cannot load the result (transformers reads its own folder,
see the README).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.core import Session
from bench.peers import TORCHPKG

__all__ = ["run_intern_library"]

TORCH_PACKAGE = "torch.package"  # the report's name for it
_REAL = Path(__file__).resolve().parents[1] / "tests" / "real"


def run_intern_library(session: Session) -> None:
    if any(importlib.util.find_spec(name) is None for name in ("transformers", "peft")):
        session.log("intern-library: skipped (transformers not installed: pip install .[real])")
        return
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    for round_ in range(session.config.rounds):
        session.log(f"intern-library: round {round_ + 1}/{session.config.rounds}")
        command = [sys.executable, "-m", "bench.intern_library", str(session.path("il"))]
        cold = dict(env, TORCHPKG_CACHE_DIR=str(session.path(f"il-cache-{round_}")))
        done = subprocess.run(command, env=cold, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"intern-library failed:\n{done.stderr[-3000:]}")
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        for (phase, peer), seconds in zip(_PHASES, measured["seconds"], strict=True):
            session.results.add("intern-library", phase, peer, seconds)
        session.results.note("intern-library", **measured["facts"])


_PHASES = (
    ("export first", TORCHPKG),
    ("export second", TORCHPKG),
    ("load", TORCHPKG),
    ("export first", TORCH_PACKAGE),
)


def _measure(scratch: Path) -> dict[str, object]:
    sys.path.insert(0, str(_REAL))
    import torch.package
    from _real_models import gpt2  # type: ignore[import-not-found]

    from torchpkg import PackageExporter, PackageImporter

    model, _args, _ = gpt2()
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / "gpt2.pt"
    seconds: list[float] = []
    for _ in range(2):
        start = time.perf_counter()
        with PackageExporter(path) as exporter:
            exporter.intern("transformers.**")
            exporter.extern("**")
            exporter.save_pickle("model", "model.pkl", model)
        seconds.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory(dir=scratch) as cache:
        os.environ["TORCHPKG_CACHE_DIR"] = cache
        start = time.perf_counter()
        with PackageImporter(path, materialize=True) as importer:
            importer.load_pickle("model", "model.pkl")
            seconds.append(time.perf_counter() - start)
        for folder, _dirs, _files in os.walk(cache):
            os.chmod(folder, 0o700)
    facts = {"modules interned": len(exporter.interned_modules()), "bytes": path.stat().st_size}
    start = time.perf_counter()
    with torch.package.PackageExporter(str(scratch / "tp.pt")) as reference:
        reference.intern("transformers.**")
        reference.extern("**")
        reference.save_pickle("model", "model.pkl", model)
    seconds.append(time.perf_counter() - start)
    facts["torch.package modules interned"] = len(reference.interned_modules())
    facts["torch.package bytes"] = (scratch / "tp.pt").stat().st_size
    return {"seconds": seconds, "facts": facts}


if __name__ == "__main__":
    print(json.dumps(_measure(Path(sys.argv[1]))))
