"""examples/core-client.toml shows every setting an operator may need (issue 17 #16)."""

import re
from pathlib import Path

import pytest
import tomllib

from core_client.proxy.config import UpstreamSettings

ROOT = Path(__file__).resolve().parents[2]


def commented_section(text: str, name: str) -> dict:
    """The example's commented-out ``[name]`` section, uncommented and read as TOML."""
    block = re.search(rf"^# \[{re.escape(name)}\]\n((?:# [^\[].*\n)+)", text, re.M)
    assert block is not None, f"no commented [{name}] section"
    return tomllib.loads("\n".join(line[2:] for line in block.group(1).splitlines()))


@pytest.mark.issue(17, item=16)
def test_the_upstream_example_names_every_setting_and_what_bounds_the_delay_after_an_outage():
    text = (ROOT / "examples" / "core-client.toml").read_text()
    shown = commented_section(text, "upstream")
    assert set(UpstreamSettings.model_fields) - {"credentials"} <= set(shown)
    UpstreamSettings(**shown)  # and the values are valid
    line = next(line for line in text.splitlines() if line.startswith("# reconnect_max_s"))
    assert "outage" in line


def test_the_ocpi_cpo_example_names_every_setting_and_is_valid():
    from core_client.ocpi.cpo.catalog import Site
    from core_client.ocpi.cpo.settings import CpoSettings

    text = (ROOT / "examples" / "core-client.toml").read_text()
    shown = commented_section(text, "ocpi_cpo")
    assert set(CpoSettings.model_fields) - {"sites"} <= set(shown)
    site = commented_section(text, 'ocpi_cpo.sites."CP-0001"')
    assert CpoSettings(**shown, sites={"CP-0001": Site(**site)}).vat_percent == 19
