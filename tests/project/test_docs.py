"""The generated contracts' API doc matches the compiled contracts."""

from pathlib import Path

from tools.contract_docs import render

ROOT = Path(__file__).resolve().parents[2]


def test_contract_docs_match_natspec():
    expected = render(ROOT / "build" / "contracts")
    actual = (ROOT / "docs" / "contracts.md").read_text()
    assert actual == expected, "docs/contracts.md is out of date with the contracts: run `make docs`"
