"""The ``[ocpi]`` section of the Core Client's config: read from the file or EVN_CC_OCPI, checked at load,
written back by settings_to_toml (token A included: it is the operator's file)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from core_client.config import ConfigError, Settings, load_settings, settings_to_toml
from core_client.ocpi.errors import OcpiError
from tools.harness.ocpi.our_cpo import cpo_section

SECTION = """
[ocpi]
versions_url = "https://csms.example.com/ocpi/versions"
token_a = "token-a-123"
country_code = "DE"
party_id = "EVN"
business_name = "EV Network"
public_url = "https://emsp.example.com/ocpi/"
registration_file = "secrets/ocpi.json"
"""


def test_ocpi_section_from_the_file_and_back(tmp_path: Path) -> None:
    config = tmp_path / "core-client.toml"
    config.write_text('database = "core.sqlite"\n' + SECTION)
    settings = load_settings(config, environ={})
    ocpi = settings.ocpi
    assert ocpi is not None and ocpi.party.key() == ("DE", "EVN") and ocpi.port == 9004
    assert ocpi.public_url == "https://emsp.example.com/ocpi" and ocpi.versions_endpoint.endswith("/ocpi/versions")
    assert ocpi.registration_file == tmp_path / "secrets" / "ocpi.json"  # relative to the config file
    assert "token-a-123" not in repr(settings)
    again = tmp_path / "again.toml"
    again.write_text(settings_to_toml(settings))
    assert load_settings(again, environ={}).ocpi == ocpi


def test_ocpi_from_the_environment_and_off(tmp_path: Path) -> None:
    config = tmp_path / "core-client.toml"
    config.write_text(SECTION)
    env = {
        "party_id": "ABC",
        "country_code": "NL",
        "business_name": "X",
        "versions_url": "http://c/v",
        "public_url": "http://e",
    }
    assert load_settings(config, environ={"EVN_CC_OCPI": json.dumps(env)}).ocpi.party.key() == ("NL", "ABC")
    assert load_settings(config, environ={"EVN_CC_OCPI": ""}).ocpi is None


@pytest.mark.parametrize(
    "line, field",
    [
        ('party_id = "EVNX"', "ocpi.party_id"),
        ('country_code = "D1"', "ocpi.country_code"),
        ('public_url = "emsp.example.com"', "ocpi.public_url"),
        ('versions_url = "ftp://csms/versions"', "ocpi.versions_url"),
        ('token_encoding = "rot13"', "ocpi.token_encoding"),
        ('currency = "euro"', "ocpi.currency"),
        ("surprise = 1", "ocpi.surprise"),
    ],
)
def test_bad_values_are_one_line(tmp_path: Path, line: str, field: str) -> None:
    name = line.split(" = ")[0]
    kept = "\n".join(row for row in SECTION.splitlines() if not row.startswith(name + " "))
    config = tmp_path / "core-client.toml"
    config.write_text(kept + "\n" + line + "\n")
    with pytest.raises(ConfigError, match=f"invalid configuration: {field}"):
        load_settings(config, environ={})


@pytest.mark.parametrize("setting", ["session_pull_after_s", "request_timeout_s"])
@pytest.mark.parametrize("seconds", ["60", "90"])
def test_the_pull_and_a_start_session_end_before_the_start_times_out(
    tmp_path: Path, setting: str, seconds: str
) -> None:
    """The Session pull after an accepted start comes before the start times out; so does the end of a
    START_SESSION's retries on connection failures (request_timeout_s): it reaches the CSMS, or fails, first."""
    config = tmp_path / "core-client.toml"
    config.write_text(f'database = "core.sqlite"\nstart_timeout_s = 60\n{SECTION}{setting} = {seconds}\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config, environ={})
    message = str(refused.value)
    assert "\n" not in message and f"[ocpi] {setting} ({seconds} s)" in message and "start_timeout_s (60 s)" in message
    config.write_text(f'database = "core.sqlite"\nstart_timeout_s = 60\n{SECTION}{setting} = 59\n')
    assert getattr(load_settings(config, environ={}).ocpi, setting) == 59


def test_the_cpo_section_with_its_sites_is_written_back(tmp_path: Path) -> None:
    """settings_to_toml writes [ocpi_cpo] sites (a table of tables) and vat_percent as TOML reads them back
    (was: JSON objects, which load_settings refused as not TOML)."""
    settings = Settings(database=tmp_path / "core.sqlite", ocpi_cpo=cpo_section(tmp_path, "CP-1", "CP-2"))
    settings.ocpi_cpo.vat_percent = Decimal("19.5")
    config = tmp_path / "core-client.toml"
    config.write_text(settings_to_toml(settings))
    again = load_settings(config, environ={})
    assert again.ocpi_cpo == settings.ocpi_cpo and set(again.ocpi_cpo.sites) == {"CP-1", "CP-2"}


@pytest.mark.issue(18)
def test_token_a_from_the_environment_or_a_0600_file_before_the_config(tmp_path: Path) -> None:
    """Token A need not sit in the config: the variable named by token_a_env wins, then token_a_file (beside the
    config; refused, naming the fix, when others may read it), then token_a; none is one line naming all three."""
    config = tmp_path / "core-client.toml"
    config.write_text(SECTION.replace('token_a = "token-a-123"', 'token_a_file = "secrets/token-a"'))
    ocpi = load_settings(config, environ={}).ocpi
    assert ocpi is not None and ocpi.token_a_file == tmp_path / "secrets" / "token-a"
    with pytest.raises(OcpiError, match=r"token_a_file .*token-a: No such file"):
        ocpi.registration_token({})
    ocpi.token_a_file.parent.mkdir()
    ocpi.token_a_file.write_text("token-a-from-a-file\n")
    ocpi.token_a_file.chmod(0o644)
    with pytest.raises(OcpiError, match=r"may be read by others \(mode 0644\): chmod 600 "):
        ocpi.registration_token({})
    ocpi.token_a_file.chmod(0o600)
    assert ocpi.registration_token({}) == "token-a-from-a-file"
    assert ocpi.registration_token({"EVN_OCPI_TOKEN_A": "token-a-from-env"}) == "token-a-from-env"
    assert "token-a-from" not in repr(ocpi)

    (tmp_path / "inline.toml").write_text(SECTION)
    inline = load_settings(tmp_path / "inline.toml", environ={})
    assert inline.ocpi is not None and inline.ocpi.registration_token({}) == "token-a-123"
    assert inline.ocpi.registration_token({"EVN_OCPI_TOKEN_A": "env"}) == "env"
    inline.ocpi.token_a = None
    with pytest.raises(OcpiError) as missing:
        inline.ocpi.registration_token({})
    assert all(where in str(missing.value) for where in ("EVN_OCPI_TOKEN_A", "token_a_file", "token_a in [ocpi]"))
