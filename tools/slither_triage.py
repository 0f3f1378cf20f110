"""Compare slither's findings (its --json output) with the triage file: accepted findings are
counted, any other fails the lint. Used by tools/slither.sh (``make lint``).

    python -m tools.slither_triage build/slither.json tools/slither-triage.toml [build/slither.log]"""

from __future__ import annotations

import json
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the tomli backport
    import tomli as tomllib  # type: ignore[no-redef]


def element_of(finding: dict) -> str:
    """``Contract.function`` (or ``function.variable`` for a local) of a finding's first element."""
    first = finding["elements"][0]
    parent = first.get("type_specific_fields", {}).get("parent", {}).get("name")
    return f"{parent}.{first['name']}" if parent else first["name"]


def main(argv: list[str]) -> int:
    report_path, triage_path, *log = (Path(a) for a in argv)
    if not report_path.exists():
        tail = log[0].read_text()[-2000:] if log and log[0].exists() else ""
        print(f"slither produced no report ({report_path}):\n{tail}", file=sys.stderr)
        return 1
    report = json.loads(report_path.read_text())
    if not report.get("success"):
        print(f"slither failed: {report.get('error')}", file=sys.stderr)
        return 1
    accepted = {(a["check"], a["element"]) for a in tomllib.loads(triage_path.read_text())["accepted"]}
    findings = report.get("results", {}).get("detectors", [])
    new = [f for f in findings if (f["check"], element_of(f)) not in accepted]
    for finding in new:
        where = element_of(finding)
        print(f"slither: {finding['impact']} {finding['check']} in {where} (not triaged):\n{finding['description']}")
    seen = {(f["check"], element_of(f)) for f in findings}
    stale = sorted(accepted - seen)
    for check, element in stale:
        print(f"slither triage: {check} {element} is no longer reported: remove it from {triage_path}")
    print(f"slither: {len(findings)} findings in our contracts, {len(findings) - len(new)} triaged, {len(new)} new")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
