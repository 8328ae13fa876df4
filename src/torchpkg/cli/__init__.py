"""``torchpkg`` / ``python -m torchpkg``: look inside packages before you run them.

Every command but ``verify`` (and ``suggest module:attr``, which imports that
module) only reads: none imports torch or runs packaged code. ``verify`` checks
the archive against its integrity manifest first, and runs nothing that fails
it; ``verify --integrity-only`` only reads too. Exit status:
0 all well, 1 findings (refused globals, differences, failed verification),
2 bad arguments or input. ``--json`` on every command prints one JSON
document; ``--debug`` shows the traceback of an error.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from torchpkg.cli._common import USAGE, CommandError
from torchpkg.errors import TorchpkgError

__all__ = ["CommandError", "build_parser", "main"]

_DESCRIPTION = """\
Look inside torch.package archives (.pt files or their unzipped folders) before
you load them. A package is code: read what it holds, what it imports and what
its pickles would call, then load it with PackageImporter(path, allow=[...]).
"""

_EPILOG = """\
examples:
  torchpkg info model.pt                   versions, sizes, modules, externs, mocks
  torchpkg tree model.pt --include 'model/**'
  torchpkg scan model.pt                   every global each pickle references, by risk
  torchpkg scan model.pt --allow 'numpy.**'
  torchpkg deps model.pt --why numpy       the import chains that pull numpy in
  torchpkg deps mypkg.models --dot | dot -Tpng > deps.png
  torchpkg diff old.pt new.pt              modules, pickles and tensors that changed
  torchpkg suggest mypkg.models:Model      the intern/extern rules a roundtrip uses
  torchpkg verify model.pt --integrity-only
  torchpkg verify model.pt --pickles --safe

exit status: 0 ok, 1 findings or differences, 2 bad arguments or input
"""

_COMMANDS: dict[str, tuple[str, str]] = {
    "tree": ("print the package's file tree", "torchpkg tree model.pt --exclude '.data/**'"),
    "info": (
        "versions, sizes and counts; extern and mocked modules; the environment record",
        "torchpkg info model.pt --json",
    ),
    "deps": (
        "the import graph of a package (from its sources) or of an installed module",
        "torchpkg deps model.pt --why torch.nn\n  torchpkg deps mypkg.models --svg > deps.svg",
    ),
    "scan": (
        "every global each pickle references, flagged safe / review / dangerous",
        "torchpkg scan model.pt --allow 'numpy.core.multiarray._reconstruct'",
    ),
    "verify": (
        "check the integrity manifest, then import every packaged module and load every "
        "pickle (RUNS the package's code, unless it was altered)",
        "torchpkg verify model.pt --integrity-only --strict\n"
        "  torchpkg verify model.pt --pickles --safe --allow 'numpy.**'",
    ),
    "diff": (
        "modules, pickles, tensors and resources that differ between two packages",
        "torchpkg diff v1.pt v2.pt --json",
    ),
    "suggest": (
        "the export policy a roundtrip uses for a module or module:attr, ready to paste",
        "torchpkg suggest mypkg.models\n  torchpkg suggest mypkg.models:Model --root .",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    from torchpkg.cli._deps import run_deps
    from torchpkg.cli._diff import run_diff
    from torchpkg.cli._inspect import run_info, run_tree, run_verify
    from torchpkg.cli._scan import run_scan
    from torchpkg.cli._suggest import run_suggest

    parser = argparse.ArgumentParser(
        prog="torchpkg",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document")
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        summary, example = _COMMANDS[name]
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"example:\n  {example}",
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(run=run)
        return sub

    tree = command("tree", run_tree)
    tree.add_argument("package", help="a .pt file or an unzipped package folder")
    tree.add_argument("--include", action="append", metavar="GLOB", help="repeatable")
    tree.add_argument("--exclude", action="append", default=None, metavar="GLOB")
    tree.add_argument(
        "--include-private",
        action="store_true",
        help="also torchpkg's own records (.data/torchpkg/), which torch.package ignores",
    )

    info = command("info", run_info)
    info.add_argument("package", help="a .pt file or an unzipped package folder")

    deps = command("deps", run_deps)
    deps.add_argument("target", help="a package (.pt file or folder) or a module name")
    shape = deps.add_mutually_exclusive_group()
    shape.add_argument("--dot", action="store_true", help="print the graph in Graphviz DOT")
    shape.add_argument("--svg", action="store_true", help="print SVG (needs Graphviz's dot)")
    deps.add_argument("--why", metavar="MODULE", help="print the import chains that lead to it")

    scan = command("scan", run_scan)
    scan.add_argument("package", help="a .pt file or an unzipped package folder")
    scan.add_argument(
        "--allow", action="append", metavar="PATTERN", help="as PackageImporter(allow=...)"
    )

    verify = command("verify", run_verify)
    verify.add_argument("package", help="a .pt file or an unzipped package folder")
    verify.add_argument("--pickles", action="store_true", help="also load every pickle")
    verify.add_argument("--safe", action="store_true", help="load pickles with safe loading")
    verify.add_argument("--allow", action="append", metavar="PATTERN", help="implies --safe")
    verify.add_argument(
        "--integrity-only",
        action="store_true",
        help="only compare the records with the manifest: run nothing, import no torch",
    )
    verify.add_argument(
        "--strict",
        action="store_true",
        help="fail (and run nothing) where there is no manifest (torch.package archives)",
    )

    diff = command("diff", run_diff)
    diff.add_argument("old", help="a package (.pt file or folder)")
    diff.add_argument("new", help="the package to compare it with")

    suggest = command("suggest", run_suggest)
    suggest.add_argument("target", help="module or module:attr")
    suggest.add_argument(
        "--root",
        action="append",
        metavar="DIR",
        help="the repository's folders (default: the current directory); repeatable",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "exclude", None) is None:
        args.exclude = []
    try:
        code: int = args.run(args)
    except (TorchpkgError, OSError, ValueError) as error:
        if args.debug:
            traceback.print_exc()
        text = " ".join(str(error).split()) or type(error).__name__
        print(f"torchpkg: error: {text}", file=sys.stderr)
        return USAGE
    return code
