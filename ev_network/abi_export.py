"""Copy the ABIs the runtime needs from Brownie's build artifacts into ``ev_network/abi``.

Usage: ``python -m ev_network.abi_export build/contracts ev_network/abi`` (``make abi``).
``tests/project/test_abi_drift.py`` fails when the shipped ABIs differ from freshly compiled contracts.
"""

import json
import sys
from pathlib import Path

CONTRACTS = ("EVToken", "SessionEscrow", "PlainToken", "RecordAnchor", "OperatorProfile", "PaymentMandates")


def export(build_dir: Path, abi_dir: Path) -> list[Path]:
    """Write ``<name>.json`` (the ABI only) for every contract the runtime uses; return the paths."""
    abi_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CONTRACTS:
        artifact = json.loads((build_dir / f"{name}.json").read_text())
        target = abi_dir / f"{name}.json"
        target.write_text(json.dumps(artifact["abi"], indent=1, sort_keys=True) + "\n")
        written.append(target)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m ev_network.abi_export BUILD_DIR ABI_DIR")
    for path in export(Path(sys.argv[1]), Path(sys.argv[2])):
        print(f"wrote {path}")
