"""The ABIs shipped in ev_network/abi must equal the freshly compiled contracts (build/contracts,
written by `make setup`); after a contract change `make abi` refreshes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ev_network.abi_export import CONTRACTS
from ev_network.deployment import ABI_DIR
from tools.harness.contracts import BUILD, artifact


def canonical(abi: list[dict]) -> list[str]:
    """An ABI as a sorted list of canonical JSON entries: the order of entries and of keys does not
    matter, the order of inputs and outputs does."""
    return sorted(json.dumps(entry, sort_keys=True, separators=(",", ":")) for entry in abi)


def drift(shipped: list[dict], compiled: list[dict]) -> list[str]:
    """Human-readable differences between a shipped and a compiled ABI (empty when they agree)."""
    ours, theirs = set(canonical(shipped)), set(canonical(compiled))
    lines = [f"  only in the compiled contract: {entry}" for entry in sorted(theirs - ours)]
    lines += [f"  only in ev_network/abi:       {entry}" for entry in sorted(ours - theirs)]
    if not lines and len(canonical(shipped)) != len(canonical(compiled)):
        lines.append("  an entry appears more than once")
    return lines


@pytest.mark.parametrize("name", CONTRACTS)
def test_shipped_abi_matches_the_compiled_contract(name: str) -> None:
    shipped_path = ABI_DIR / f"{name}.json"
    assert shipped_path.exists(), f"{shipped_path} missing: run `make abi`"
    differences = drift(json.loads(shipped_path.read_text()), artifact(name)["abi"])
    assert not differences, (
        f"ev_network/abi/{name}.json differs from {BUILD / name}.json: run `make abi`\n" + "\n".join(differences)
    )


def test_drift_is_detected() -> None:
    """The comparison can fail: a renamed event, a changed input type or a missing error all count."""
    abi = artifact("SessionEscrow")["abi"]
    assert drift(abi, list(reversed(abi))) == []  # the order of entries does not matter
    renamed = json.loads(json.dumps(abi))
    next(e for e in renamed if e.get("name") == "SessionSettled")["name"] = "SessionClosed"
    assert drift(renamed, abi)
    retyped = json.loads(json.dumps(abi))
    next(e for e in retyped if e.get("name") == "open")["inputs"][2]["type"] = "uint256"
    assert drift(retyped, abi)
    missing = [e for e in abi if e.get("name") != "MeterBelowStart"]
    assert any("MeterBelowStart" in line for line in drift(missing, abi))
    swapped = json.loads(json.dumps(abi))
    inputs = next(e for e in swapped if e.get("name") == "settle")["inputs"]
    inputs.reverse()
    assert drift(swapped, abi)


def test_every_shipped_abi_is_exported() -> None:
    shipped = {p.stem for p in Path(ABI_DIR).glob("*.json")}
    assert shipped == set(CONTRACTS), "ev_network/abi holds other files than abi_export.CONTRACTS: run `make abi`"


def test_the_escrow_fits_the_contract_size_limit() -> None:
    """EIP-170: a deployed contract has at most 24,576 bytes of code (the escrow is close to it; a chain
    refuses a larger deploy, so this fails first, with the size)."""
    size = len(bytes.fromhex(artifact("SessionEscrow")["deployedBytecode"].removeprefix("0x")))
    assert size <= 24_576, f"SessionEscrow's code is {size} bytes, over EIP-170's 24,576"
