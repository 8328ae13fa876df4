"""``scan``: every global each pickle references, judged as safe loading judges it."""

from __future__ import annotations

import argparse

from torchpkg.cli._common import FINDINGS, OK, emit_json, open_package
from torchpkg.security import Allowlist, ArchiveScan, Finding, Risk, scan_archive

__all__ = ["run_scan"]


def _finding_json(finding: Finding) -> dict[str, object]:
    ref, verdict = finding.reference, finding.verdict
    return {
        "global": finding.global_name,
        "opcode": ref.opcode,
        "offset": ref.offset,
        "risk": verdict.risk.value,
        "allowed": verdict.allowed,
        "basis": verdict.basis.name.lower(),
        "reason": verdict.reason,
    }


def _summary(scan: ArchiveScan) -> str:
    refused = sum(len(pickle.refused) + (pickle.problem is not None) for pickle in scan.pickles)
    total = sum(len(pickle.findings) for pickle in scan.pickles)
    counts = ", ".join(f"{scan.count(risk)} {risk.value}" for risk in Risk)
    verdict = (
        "safe loading would load every pickle"
        if scan.loads_safely
        else f"safe loading would refuse {refused}"
    )
    return f"{scan.archive}: {len(scan.pickles)} pickle(s), {total} global(s) ({counts}); {verdict}"


def run_scan(args: argparse.Namespace) -> int:
    allow = Allowlist.of(args.allow or ())
    with open_package(args.package) as reader:
        scan = scan_archive(reader, allow, name=args.package)
    if args.json:
        emit_json(
            {
                "package": scan.archive,
                "loads_safely": scan.loads_safely,
                "pickles": [
                    {
                        "record": pickle.record,
                        "problem": pickle.problem,
                        "globals": [_finding_json(finding) for finding in pickle.findings],
                    }
                    for pickle in scan.pickles
                ],
            }
        )
        return OK if scan.loads_safely else FINDINGS
    for pickle in scan.pickles:
        print(pickle.record)
        if pickle.problem is not None:
            print(f"  dangerous  the pickle {pickle.problem}")
        for finding in pickle.findings:
            mark = "" if finding.verdict.allowed else "  [refused]"
            print(
                f"  {finding.verdict.risk.value:<9}  {finding.where:<22}  "
                f"{finding.global_name}  ({finding.verdict.reason}){mark}"
            )
    print(_summary(scan))
    return OK if scan.loads_safely else FINDINGS
