"""``python -m upstream fetch|run|summarize``: the real suites under the torchpkg gate."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from upstream.fetch import fetch
from upstream.runner import MODES, describe_torchpkg, load_suite, run_suite
from upstream.suites import SUITES, WORKDIR, select
from upstream.summary import summarize
from upstream.text import render, render_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m upstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    names = ", ".join(suite.name for suite in SUITES)
    get = commands.add_parser("fetch", help="download, extract and install the suites")
    get.add_argument("--suite", action="append", help=f"only this suite ({names}); repeatable")
    run = commands.add_parser("run", help="run each suite plain, under the gate, in report mode")
    again = commands.add_parser("summarize", help="summarize the last run again, from its files")
    for command in (run, again):
        command.add_argument("--suite", action="append", help=f"only this suite ({names})")
        command.add_argument("--slice", action="store_true", help="each suite's quick slice")
        command.add_argument("--json", type=Path, help="also write the summary as JSON here")
        command.add_argument("--out", type=Path, help="artefacts (default .upstream/runs/...)")
        command.add_argument("--mode", action="append", choices=list(MODES), help="only these")
    run.add_argument("-n", "--workers", type=int, default=0, help="pytest-xdist workers per run")
    run.add_argument("--timeout", type=float, default=7200.0, help="seconds per run")
    run.add_argument(
        "--src",
        type=Path,
        help="a torchpkg source folder to test instead of the installed one (e.g. an "
        "export of a commit: git archive HEAD src | tar -x -C DIR, then --src DIR/src)",
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    out = args.out or WORKDIR / "runs" / ("slice" if args.slice else "full")
    modes = tuple(mode for mode in MODES if not args.mode or mode in args.mode)
    summaries: list[dict[str, Any]] = []
    torchpkg = describe_torchpkg(getattr(args, "src", None))  # before the code can change
    for suite in select(args.suite):
        if args.command == "summarize":
            result = load_suite(suite, out, modes)
            if result is None:
                print(f"{suite.requirement}: no runs in {out / suite.name}")
                continue
        else:
            print(f"running {suite.requirement} ({'slice' if args.slice else 'full'})", flush=True)
            result = run_suite(
                suite,
                out,
                slice_only=args.slice,
                workers=args.workers,
                timeout=args.timeout,
                modes=modes,
                src=args.src,
            )
        summaries.append(summarize(result))
    print()
    for summary in summaries:
        print(render(summary))
        print()
    print(render_table(summaries))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "slice": args.slice,
            "torchpkg": torchpkg,
            "suites": summaries,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nJSON summary: {args.json}")
    return 0


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # the runner then ends the pytest process it waits for


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A background job starts with SIGINT ignored: make both signals end the runs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop)
    if args.command == "fetch":
        fetch(select(args.suite))
        return 0
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
