"""``python -m bench [--quick] [--only WORKLOAD] [--json PATH]``: run and print the table."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.core import FULL, QUICK
from bench.peers import CODE_EXPORTERS, FORMATS
from bench.report import format_report, machine, to_json
from bench.workloads import WORKLOADS, run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    peers = sorted({fmt.name for fmt in FORMATS} | {exp.name for exp in CODE_EXPORTERS})
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="torchpkg against torch.package, torch.save/load, safetensors and raw I/O.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller models, fewer rounds")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(WORKLOADS),
        metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--peers",
        nargs="+",
        choices=peers,
        metavar="PEER",
        help=f"run only these tools (by export row): {', '.join(peers)}",
    )
    parser.add_argument("--rounds", type=int, help="rounds per workload (default 5, quick 3)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the data as JSON")
    parser.add_argument("--tmp-dir", help="where scratch files go (default: /tmp)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.rounds is not None:
        config = replace(config, rounds=args.rounds)
    if args.peers is not None:
        config = replace(config, peers=frozenset(args.peers))
    if args.tmp_dir is not None:
        config = replace(config, tmp_dir=args.tmp_dir)

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[bench {time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr)

    start = time.perf_counter()
    results = run(config, args.only, log)
    elapsed = time.perf_counter() - start
    info = machine()
    print(format_report(results, config, info))
    print(f"\ntotal: {elapsed:.0f} s")
    if args.json is not None:
        document = to_json(results, config, info)
        document["elapsed_s"] = round(elapsed, 1)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
