"""Settings that can never work are refused when the config is loaded, without a network: charge point
ids that cannot log in, password hashes, node URLs, missing TLS files; the control token file."""

from __future__ import annotations

from pathlib import Path

import pytest

from core_client.config import (
    ConfigError,
    Settings,
    check_charge_point_id,
    control_token,
    load_settings,
)
from tools.harness.chain import TOKEN

DEPOSIT = 20 * TOKEN


@pytest.mark.issue(9)
@pytest.mark.parametrize("cp_id", ["CLI/SLASH", "with:colon", "space d", "", "x" * 49, "new\nline", "caf\u00e9"])
def test_charge_point_ids_that_can_never_log_in_are_refused_by_config_and_cli_check(cp_id):
    with pytest.raises(ValueError, match="charge point id"):
        check_charge_point_id(cp_id)
    with pytest.raises(ConfigError, match="charge point id"):
        load_settings(None, {"EVN_CC_CHARGE_POINTS": f'{{"{cp_id}": "pw"}}'.replace("\n", "\\n")})


@pytest.mark.issue(9)
def test_usual_charge_point_ids_are_accepted():
    for cp_id in ("CP-0001", "VOLT-BER-001", "cp_1.a@site+x", "A" * 48):
        assert check_charge_point_id(cp_id) == cp_id


@pytest.mark.issue(9)
def test_sha256_password_must_be_hex():
    with pytest.raises(ConfigError, match="64 hex digits"):
        load_settings(None, {"EVN_CC_CHARGE_POINTS": '{"CP-1": "sha256:' + "z" * 64 + '"}'})
    ok = load_settings(None, {"EVN_CC_CHARGE_POINTS": '{"CP-1": "sha256:' + "A" * 64 + '"}'})
    assert list(ok.charge_points) == ["CP-1"]


@pytest.mark.issue(9)
@pytest.mark.parametrize("url", ["notaurl", "localhost:8545", "ftp://node:21", "http://"])
def test_rpc_url_that_is_no_http_url_is_refused_at_load_time(url):
    with pytest.raises(ConfigError, match="rpc_url"):
        load_settings(None, {"EVN_CC_RPC_URL": url})


@pytest.mark.issue(9)
def test_missing_tls_files_are_named_with_their_setting(tmp_path: Path):
    cert = tmp_path / "cert.pem"
    cert.write_text("not really a certificate")
    with pytest.raises(ConfigError, match=f"tls_key: no file at {tmp_path / 'missing.key'}"):
        load_settings(None, {"EVN_CC_TLS_CERT": str(cert), "EVN_CC_TLS_KEY": str(tmp_path / "missing.key")})


@pytest.mark.issue(9)
def test_control_token_is_made_once_private_and_read_back(tmp_path: Path):
    settings = Settings(database=tmp_path / "core.sqlite")
    assert control_token(settings) is None
    token = control_token(settings, create=True)
    assert token and len(token) >= 32 and control_token(settings) == token
    assert settings.control_token_file.stat().st_mode & 0o077 == 0
    assert control_token(Settings(database=tmp_path / "core.sqlite", control_token="x" * 20)) == "x" * 20
    with pytest.raises(ValueError):
        Settings(control_token="short")
