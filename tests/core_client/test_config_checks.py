"""The configuration loader, without a network: the file, EVN_CC_* overrides and hashed passwords, database
URLs and paths, errors that say what is wrong; settings that can never work are refused when the config is
loaded: charge point ids that cannot log in, password hashes, node URLs, missing TLS files; the control
token file."""

from __future__ import annotations

from pathlib import Path

import pytest

from core_client.config import (
    ConfigError,
    Settings,
    check_charge_point_id,
    control_token,
    hash_password,
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


def test_config_file_env_and_hashed_passwords(tmp_path):
    cfg = tmp_path / "cc.toml"
    cfg.write_text(
        'listen_port = 9100\ndatabase = "data/cc.sqlite"\n'
        f'[charge_points]\n"CP-1" = "plain"\n"CP-2" = "{hash_password("secret")}"\n'
    )
    settings = load_settings(cfg, environ={"EVN_CC_LISTEN_PORT": "9200", "EVN_CC_RPC_URL": "http://node:8545"})
    assert settings.listen_port == 9200 and settings.rpc_url == "http://node:8545"
    assert settings.database == tmp_path / "data" / "cc.sqlite"
    assert settings.check_password("CP-1", "plain") and not settings.check_password("CP-1", "Plain")
    assert settings.check_password("CP-2", "secret") and not settings.check_password("CP-2", "plain")
    assert not settings.check_password("CP-3", "plain")
    env = {"EVN_CC_CHARGE_POINTS": '{"CP-9": "x"}'}
    assert load_settings(cfg, environ=env).charge_points == {"CP-9": "x"}


def test_a_postgresql_database_is_a_url_as_given_and_a_file_a_path(tmp_path):
    cfg = tmp_path / "cc.toml"
    url = "postgresql://cc@db.internal:5433/evn?sslmode=require"
    cfg.write_text(f'database = "{url}"\n[upstream]\nurl = "ws://csms/ocpp"\noutbox = "{url}"\n')
    settings = load_settings(cfg, environ={})
    assert settings.database == url and settings.upstream.outbox == url  # not resolved against the folder
    assert settings.control_token_file == Path("operator.json.control-token")  # beside the keystore
    from_env = load_settings(cfg, environ={"EVN_CC_DATABASE": "postgres:///evn"})
    assert from_env.database == "postgres:///evn"
    assert load_settings(cfg, environ={"EVN_CC_DATABASE": "cc.sqlite"}).database == Path("cc.sqlite")
    assert Settings().database == Path("core-client.sqlite")  # SQLite stays the default
    ocpi = 'versions_url = "https://csms.example/ocpi/versions"\ncountry_code = "DE"\nparty_id = "EVN"\n'
    ocpi += 'business_name = "EV Network"\npublic_url = "https://emsp.example/ocpi"\n'
    cfg.write_text(f'database = "{url}"\n[ocpi]\n{ocpi}')
    with pytest.raises(ConfigError, match="registration_file must be set with a postgresql:// database"):
        load_settings(cfg, environ={})
    cfg.write_text(f'database = "{url}"\n[ocpi]\n{ocpi}registration_file = "ocpi.json"\n')
    assert load_settings(cfg, environ={}).ocpi.registration_path(url) == tmp_path / "ocpi.json"
    cpo = (
        'country_code = "DE"\nparty_id = "EVN"\nbusiness_name = "EV Network"\npublic_url = "https://cpo.example/ocpi"\n'
    )
    cfg.write_text(f'database = "{url}"\n[ocpi_cpo]\n{cpo}')
    with pytest.raises(ConfigError, match="peers_file must be set with a postgresql:// database"):
        load_settings(cfg, environ={})
    cfg.write_text(f'database = "{url}"\n[ocpi_cpo]\n{cpo}peers_file = "emsps.json"\n')
    assert load_settings(cfg, environ={}).ocpi_cpo.peers_path(url) == tmp_path / "emsps.json"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("listen_port = 'x'", {}, "listen_port"),
        ("budget_margin = 1.5", {}, "budget_margin"),
        ("typo_field = 1", {}, "typo_field"),
        ("listen_port = ", {}, "not valid TOML"),
        ("", {"EVN_CC_CHARGE_POINTS": "{bad"}, "JSON object"),
        ('tls_cert = "c.pem"', {}, "tls_key"),
        ('[charge_points]\n"CP/1" = "x"', {}, "no '/'"),
    ],
)
def test_config_errors_say_what_is_wrong(tmp_path, text, env, message):
    cfg = tmp_path / "cc.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg, environ=env)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
