"""Long-running fuzzer of the archive reader, safe loading and the pickle scan.

Runs the targets of tests/fuzz/_fuzz.py (the ones the test suite runs briefly) for
a given time in worker processes, mutating seeds with ``random``, and keeps every
finding: an untyped error, a payload that ran, an input that ran past the time
limit, or a worker that died (a crash). Each finding is written to the output
folder as the input's bytes and a text file with its traceback; a summary is
printed and written as summary.json. Needs Python 3.10+, the repository, and torch
(optional: without it the seeds have no tensors). With ``--atheris TARGET`` it
runs that target under atheris (libFuzzer) instead, where atheris imports.

    PYTHONPATH=src python fuzz/run.py --seconds 3600 --workers 16 --out fuzz-findings

Replay a finding with ``python fuzz/run.py --replay FILE.bin`` (the target is the
prefix of the file name), shrink it with ``--minimize FILE.bin``, and keep it as a
regression case in tests/corpus/fuzz/ once fixed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import queue
import random
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tests" / "fuzz")]

# A worker that reports no progress for this many time limits is stuck in C code.
_STUCK_FACTOR = 3


@dataclass
class Finding:
    target: str
    kind: str  # the exception type, "payload-ran", "hang" or "crash"
    where: str  # the innermost frame, which with kind tells findings apart
    data: bytes
    text: str

    @property
    def key(self) -> str:
        return f"{self.target}-{self.kind}-{self.where}"


@dataclass
class Totals:
    executions: dict[str, int] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)  # key -> times seen
    kept: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0


def classify(target: str, data: bytes, outcome: Any) -> Finding:
    """A finding from an ``_fuzz.Outcome``: its kind and where it came from."""
    if outcome.ran_payload:
        return Finding(target, "payload-ran", "-", data, "a payload created its sentinel file")
    if outcome.printed:
        return Finding(target, "printed", "-", data, "\n".join(outcome.printed))
    error = outcome.error
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "torchpkg" in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "-"
    text = "".join(traceback.format_exception(error))
    return Finding(target, type(error).__name__, where, data, text)


@dataclass(frozen=True)
class Job:
    """What every worker is told: targets, until when, and its limits."""

    names: list[str]
    deadline: float
    seconds: float  # per input
    out: str
    memory_mb: int


def worker(index: int, job: Job, findings: Any, progress: Any, counts: Any) -> None:
    """Mutate and run until the deadline; report findings, and count executions in
    ``counts`` (one slot per worker and target: a respawned worker goes on counting)."""
    if job.memory_mb:
        limit = job.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import _fuzz

    rng = random.Random(int.from_bytes(os.urandom(8), "little") ^ index)
    targets = [_fuzz.TARGETS[name] for name in job.names]
    seeds = {target.name: target.seeds() for target in targets}
    current = Path(job.out) / f".current-{index}"
    turn = 0
    while time.time() < job.deadline:
        slot = turn % len(targets)
        target = targets[slot]
        turn += 1
        pool = seeds[target.name]
        data = target.mutate(rng, rng.choice(pool), pool)
        # Kept until the next input: what the parent saves if this one kills the worker.
        current.write_bytes(target.name.encode() + b"\n" + data)
        outcome = _fuzz.run_input(target, data, job.seconds)
        counts[index * len(targets) + slot] += 1
        progress[index] = time.time()
        if outcome.finding:
            findings.put(classify(target.name, data, outcome))


def save(out: Path, finding: Finding, totals: Totals, keep: int) -> None:
    seen = totals.findings.get(finding.key, 0)
    totals.findings[finding.key] = seen + 1
    if seen >= keep:
        return
    digest = hashlib.sha256(finding.data).hexdigest()[:12]
    stem = f"{finding.target}-{finding.kind}-{finding.where.replace(':', '_')}-{digest}"
    (out / f"{stem}.bin").write_bytes(finding.data)
    (out / f"{stem}.txt").write_text(f"{finding.key}\n\n{finding.text}")
    totals.kept.append(stem)
    print(f"finding: {finding.key} -> {stem}.bin", flush=True)


def crash(out: Path, index: int, code: int | None) -> Finding:
    """A worker that died or got stuck: its last input is the culprit."""
    current = out / f".current-{index}"
    raw = current.read_bytes() if current.exists() else b"\n"
    name, _, data = raw.partition(b"\n")
    how = "hang" if code is None else "crash"
    return Finding(name.decode(), how, f"exit{code}", data, f"worker {index}: {how} ({code})")


def run(args: argparse.Namespace) -> Totals:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch
    findings = context.Queue()
    start = time.time()
    deadline = start + args.seconds
    progress = context.Array("d", [start] * args.workers)
    counts = context.Array("q", args.workers * len(args.targets), lock=False)
    totals = Totals(dict.fromkeys(args.targets, 0))
    job = Job(args.targets, deadline, args.timeout, str(out), args.memory_mb)

    def spawn(index: int) -> Any:
        process = context.Process(
            target=worker, args=(index, job, findings, progress, counts), daemon=True
        )
        process.start()
        progress[index] = time.time() + 60  # time to import torch and build the seeds
        return process

    workers = [spawn(index) for index in range(args.workers)]
    ended: set[int] = set()  # workers that died and were not started again
    stuck_after = args.timeout * _STUCK_FACTOR
    while any(process.is_alive() for process in workers) or not findings.empty():
        try:
            save(out, findings.get(timeout=1), totals, args.keep)
            continue
        except queue.Empty:
            pass
        for index, process in enumerate(workers):
            if index in ended:
                continue
            if process.is_alive() and time.time() - progress[index] > stuck_after:
                process.kill()
                process.join()
                save(out, crash(out, index, None), totals, args.keep)
            elif process.exitcode not in (None, 0):
                save(out, crash(out, index, process.exitcode), totals, args.keep)
            else:
                continue
            if time.time() < deadline - 5:
                workers[index] = spawn(index)
            else:
                ended.add(index)
    for process in workers:
        process.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every worker, killed ones too
    totals.cpu_seconds = usage.ru_utime + usage.ru_stime
    for number, count in enumerate(counts):
        totals.executions[args.targets[number % len(args.targets)]] += count
    return totals


def summarize(args: argparse.Namespace, totals: Totals, wall: float) -> dict[str, Any]:
    summary = {
        "targets": args.targets,
        "workers": args.workers,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(totals.cpu_seconds, 1),
        "executions": totals.executions,
        "total_executions": sum(totals.executions.values()),
        "distinct_findings": len(totals.findings),
        "findings": totals.findings,
        "kept": totals.kept,
    }
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def replay(path: Path, seconds: float) -> int:
    import _fuzz

    name = next(n for n in _fuzz.TARGETS if path.name.startswith(n))
    outcome = _fuzz.run_input(_fuzz.TARGETS[name], path.read_bytes(), seconds)
    if outcome.error is not None:
        traceback.print_exception(outcome.error)
    print(f"{name}: finding={outcome.finding} ran_payload={outcome.ran_payload}")
    print("\n".join(outcome.printed))
    return 1 if outcome.finding else 0


def minimize(path: Path, seconds: float) -> int:
    """Drop ever smaller chunks of a kept input while it gives the same finding; write
    the result next to it as ``….min.bin``."""
    import _fuzz

    name = next(n for n in _fuzz.TARGETS if path.name.startswith(n))
    target = _fuzz.TARGETS[name]

    def key(data: bytes) -> str | None:
        outcome = _fuzz.run_input(target, data, seconds)
        if not outcome.finding:
            return None
        return classify(name, data, outcome).key

    data = path.read_bytes()
    wanted = key(data)
    if wanted is None:
        print(f"{path} gives no finding here")
        return 1
    chunk = len(data) // 2
    while chunk:
        at = 0
        while at < len(data):
            smaller = data[:at] + data[at + chunk :]
            if key(smaller) == wanted:
                data = smaller
            else:
                at += chunk
        chunk //= 2
    out = path.with_suffix(".min.bin")
    out.write_bytes(data)
    print(f"{wanted}: {path.stat().st_size} -> {len(data)} bytes: {out}")
    return 0


def run_atheris(args: argparse.Namespace) -> int:
    import atheris

    with atheris.instrument_imports(include=["torchpkg"]):
        import _fuzz
    target = _fuzz.TARGETS[args.atheris]
    corpus = Path(args.out) / f"atheris-{target.name}"
    corpus.mkdir(parents=True, exist_ok=True)
    for number, seed in enumerate(target.seeds()):
        (corpus / f"seed-{number}").write_bytes(seed)

    def one_input(data: bytes) -> None:
        outcome = _fuzz.run_input(target, data, None)  # libFuzzer's -timeout owns SIGALRM
        if outcome.ran_payload or outcome.printed:
            raise RuntimeError(f"a payload ran, or the interpreter printed {outcome.printed}")
        if outcome.finding:
            assert outcome.error is not None
            raise outcome.error

    argv = [sys.argv[0], str(corpus), f"-max_total_time={int(args.seconds)}",
            f"-timeout={int(args.timeout)}", f"-artifact_prefix={args.out}/{target.name}-",
            f"-rss_limit_mb={args.memory_mb or 2048}", "-print_final_stats=1"]  # fmt: skip
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--seconds", type=float, default=600, help="how long to fuzz")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="fuzz-findings", help="folder for findings")
    parser.add_argument("--targets", default=None, help="comma-separated; default: all")
    parser.add_argument("--timeout", type=float, default=10, help="seconds per input")
    parser.add_argument("--keep", type=int, default=5, help="inputs kept per distinct finding")
    parser.add_argument("--memory-mb", type=int, default=8192, help="address space per worker")
    parser.add_argument("--atheris", metavar="TARGET", help="fuzz TARGET with atheris instead")
    parser.add_argument("--replay", type=Path, help="run one kept input and show its outcome")
    parser.add_argument("--minimize", type=Path, help="shrink one kept input, same finding")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay(args.replay, args.timeout)
    if args.minimize is not None:
        return minimize(args.minimize, args.timeout)
    if args.atheris is not None:
        return run_atheris(args)
    import _fuzz

    args.targets = args.targets.split(",") if args.targets else sorted(_fuzz.TARGETS)
    unknown = sorted(set(args.targets) - set(_fuzz.TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; choose from {sorted(_fuzz.TARGETS)}")
    started = time.time()
    totals = run(args)
    summary = summarize(args, totals, time.time() - started)
    print(json.dumps({k: v for k, v in summary.items() if k != "kept"}, indent=2))
    return 1 if totals.findings else 0


if __name__ == "__main__":
    sys.exit(main())
