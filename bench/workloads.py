"""The workloads: large, many, code (timed in this process), rss and gate (child processes).

Every round runs every peer once, starting each round with the next peer, so
warm-up and cache effects fall on each peer in turn; a file is written, loaded
by every loader of its format and deleted before the next format's file, so at
most one model file exists at a time. Files are read right after they are
written and synced (untimed ``os.sync()``, so that one peer's write-back does not
land in the next measurement): loads are measured with a warm page cache.
torchpkg's export fsyncs its file before the atomic rename, inside its timing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from torch import nn

from bench import rss
from bench.core import Config, Results, Session, open_session, rotate, timed
from bench.gate import run_gate
from bench.intern_library import run_intern_library
from bench.models import load_code_model, make_large, make_many, model_bytes
from bench.peers import CODE_EXPORTERS, FORMATS, TORCHPKG, CodeExporter, Format, touch

__all__ = ["CODE_NEW_PROCESS", "WORKLOADS", "run", "run_code", "run_large", "run_many"]


def selected_formats(config: Config) -> list[Format]:
    return [fmt for fmt in FORMATS if config.peers is None or fmt.name in config.peers]


def selected_exporters(config: Config) -> list[CodeExporter]:
    return [exp for exp in CODE_EXPORTERS if config.peers is None or exp.name in config.peers]


def large_model(session: Session) -> nn.Module:
    config = session.config
    return session.shared(
        "large", lambda: make_large(session, config.large_layers, config.large_dim)
    )


def _describe(results: Results, workload: str, model: nn.Module) -> None:
    state = model.state_dict()
    results.note(workload, model_bytes=model_bytes(model), tensors=len(state))


def _warm_up(session: Session, formats: Iterable[Format]) -> None:
    """Import every tool and check every loader round-trips a tiny model (untimed)."""
    model = make_many(session, blocks=2, numel=4)
    expected = touch(model)
    path = session.path("warm-up")
    for fmt in formats:
        fmt.save(model, path)
        for loader in fmt.loaders:
            loaded = loader.load(path)
            got = touch(loaded.obj)
            loaded.close()
            if not math.isclose(got, expected, rel_tol=1e-6):
                raise RuntimeError(f"{loader.name} loaded other values ({got} != {expected})")
        path.unlink()


def _tensor_workload(session: Session, workload: str, model: nn.Module, touch_too: bool) -> None:
    config, results = session.config, session.results
    formats = selected_formats(config)
    _describe(results, workload, model)
    _warm_up(session, formats)
    for round_ in range(config.rounds):
        session.log(f"{workload}: round {round_ + 1}/{config.rounds}")
        for fmt in rotate(formats, round_):
            path = session.path(f"{workload}{fmt.suffix}")
            _, seconds = timed(partial(fmt.save, model, path))
            results.add(workload, "export", fmt.name, seconds)
            os.sync()  # write-back of this file must not slow down the next measurement
            for loader in rotate(fmt.loaders, round_):
                loaded, seconds = timed(partial(loader.load, path))
                results.add(workload, "load", loader.name, seconds)
                if touch_too:
                    start = time.perf_counter()
                    touch(loaded.obj)
                    touched = seconds + time.perf_counter() - start
                    results.add(workload, "load + touch", loader.name, touched)
                loaded.close()
                del loaded
            path.unlink()


def run_large(session: Session) -> None:
    """~1 GB in ~20 tensors: export, load (lazy for mmap loaders), load + touch every tensor."""
    _tensor_workload(session, "large", large_model(session), touch_too=True)


def run_many(session: Session) -> None:
    """~50 MB in ~5,000 parameters and buffers: per-tensor overhead."""
    config = session.config
    model = make_many(session, config.many_blocks, config.many_numel)
    _tensor_workload(session, "many", model, touch_too=False)


CODE_NEW_PROCESS = "export first, new process (warm cache)"
_CACHE_ENV = "TORCHPKG_CACHE_DIR"  # where torchpkg keeps its scan cache


def run_code(session: Session) -> None:
    """A model spanning a package of ~50 modules, exported twice in one process.

    Every round gives every tool a package with new module names and torchpkg an
    empty scan cache, so "export first" is a true first for each tool. Then a new
    process exports the same code with the cache that first export filled: what
    every later process of a CI run sees (CODE_NEW_PROCESS).
    """
    config, results = session.config, session.results
    exporters = selected_exporters(config)
    results.note("code", modules=config.code_modules + 2, functions=config.code_functions)
    warm_up, warm_up_model = load_code_model(session, modules=2, functions=1)
    with _scan_cache_in(session.path("code-cache-warm-up")):
        for exporter in exporters:  # warm-up: import the tools
            exporter.export(warm_up_model, session.path("warm-up.pt"))
            session.path("warm-up.pt").unlink()
    for round_ in range(config.rounds):
        session.log(f"code: round {round_ + 1}/{config.rounds}")
        cache = session.path(f"code-cache-{round_}")
        for exporter in rotate(exporters, round_):
            package, model = load_code_model(session, config.code_modules, config.code_functions)
            path = session.path(f"{package}.pt")
            with _scan_cache_in(cache):
                for phase in ("export first", "export second"):
                    _, seconds = timed(partial(exporter.export, model, path))
                    results.add("code", phase, exporter.name, seconds)
                    path.unlink()
                    os.sync()
            if exporter.name == TORCHPKG:
                seconds = _export_in_new_process(session, cache, warm_up, package, path)
                results.add("code", CODE_NEW_PROCESS, TORCHPKG, seconds)
            session.forget(package)
    session.forget(warm_up)


@contextmanager
def _scan_cache_in(folder: Path) -> Iterator[None]:
    """torchpkg's caches in ``folder`` (new: empty) while the block runs."""
    saved = os.environ.get(_CACHE_ENV)
    os.environ[_CACHE_ENV] = str(folder)
    try:
        yield
    finally:
        if saved is None:
            del os.environ[_CACHE_ENV]
        else:
            os.environ[_CACHE_ENV] = saved


def _export_in_new_process(
    session: Session, cache: Path, warm_up: str, package: str, path: Path
) -> float:
    command = [sys.executable, "-m", "bench._code_child", str(session.src), warm_up, package]
    env = dict(os.environ, **{_CACHE_ENV: str(cache)})
    done = subprocess.run(
        [*command, str(path)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the code workload's child failed:\n{done.stderr[-3000:]}")
    seconds: float = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds


def run_rss(session: Session) -> None:
    rss.run_rss(session, large_model(session), selected_formats(session.config))


WORKLOADS: dict[str, Callable[[Session], None]] = {
    "large": run_large,
    "many": run_many,
    "code": run_code,
    "rss": run_rss,
    "gate": run_gate,
    "intern-library": run_intern_library,
}


def run(
    config: Config,
    only: Iterable[str] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Results:
    """Run the workloads named in ``only`` (all by default) and return every measurement."""
    names = list(WORKLOADS) if only is None else [name for name in WORKLOADS if name in only]
    with open_session(config, log) as session:
        for name in names:
            start = time.perf_counter()
            WORKLOADS[name](session)
            session.results.note(name, elapsed_s=round(time.perf_counter() - start, 1))
            log(f"{name}: done in {time.perf_counter() - start:.1f} s")
        return session.results
