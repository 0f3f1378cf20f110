"""Issue 9 at the `core-client` command line: bounded waits on a silent node (#10), one useful line for
each mistake (#11), and settings refused before any transaction (#12). Real Anvil, real files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core_client.cli.main import app
from ev_network.keys import create_keyfile
from tools.harness.core import PASSWORD, ROOT, cp_ids

pytestmark = pytest.mark.issue(9)

ADD = ["--connectors", "2", "--price-per-kwh", "0.35", "--session-fee", "0.5"]


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("EVN_OPERATOR_PASSWORD", PASSWORD)
    runner = CliRunner()

    def invoke(*args: str | Path):
        result = runner.invoke(app, [str(a) for a in args])
        lines = [line for line in result.output.splitlines() if line.strip()]
        return result.exit_code, lines

    return invoke


def _config(tmp_path: Path, net, keyfile: Path, **values: object) -> Path:
    settings = {
        "rpc_url": net.rpc_url,
        "deployment_file": str(net.deployment_file),
        "keystore": str(keyfile),
        "database": str(tmp_path / "core.sqlite"),
        **values,
    }
    body = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in settings.items())
    path = tmp_path / "core-client.toml"
    path.write_text(body)
    return path


def test_a_node_that_accepts_but_never_answers_fails_within_rpc_timeout(net, tmp_path, keyfile, cli):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel accepts; nobody ever reads or answers
        config = _config(tmp_path, net, keyfile, rpc_url=f"http://127.0.0.1:{silent.getsockname()[1]}", rpc_timeout_s=1)
        started = time.monotonic()
        code, lines = cli("stations", "list", "-c", config)
    assert time.monotonic() - started < 6  # was 53 s
    assert code == 1 and len(lines) == 1 and "no answer within 1 s (rpc_timeout_s)" in lines[0], lines


def test_a_host_that_does_not_resolve_is_named(net, tmp_path, keyfile, cli):
    config = _config(tmp_path, net, keyfile, rpc_url="http://no-such-host.invalid:8545")
    code, lines = cli("stations", "list", "-c", config)
    assert code == 1 and lines == [lines[0]] and "cannot resolve host 'no-such-host.invalid'" in lines[0], lines


def test_run_refuses_an_rpc_url_that_is_not_a_url_at_once(net, tmp_path, keyfile, cli):
    config = _config(tmp_path, net, keyfile, rpc_url="notaurl")
    started = time.monotonic()
    code, lines = cli("run", "-c", config)
    assert time.monotonic() - started < 5  # was: waiting forever
    assert code == 1 and len(lines) == 1 and "rpc_url" in lines[0] and "notaurl" in lines[0], lines


def test_tariff_amounts_beyond_the_contract_are_refused_before_any_transaction(clean_chain, tmp_path, keyfile, cli):
    [cp] = cp_ids("BIG")
    config = _config(tmp_path, clean_chain, keyfile)
    for option, value, bits in [("--session-fee", "2000000", 80), ("--price-per-kwh", "1e11", 96)]:
        args = list(ADD)
        args[args.index(option) + 1] = value
        code, lines = cli("stations", "add", cp, *args, "-c", config)
        assert code == 1 and len(lines) == 1 and f"{option} {value}: at most" in lines[0] and f"uint{bits}" in lines[0]
    assert clean_chain.escrow().station_by_charge_point(cp) is None


def test_a_charge_point_id_the_config_refuses_is_refused_before_registering(clean_chain, tmp_path, keyfile, cli):
    count = clean_chain.escrow().station_count()
    code, lines = cli("stations", "add", "CLI/SLASH", *ADD, "-c", _config(tmp_path, clean_chain, keyfile))
    assert code == 1 and len(lines) == 1 and "charge point id 'CLI/SLASH'" in lines[0], lines
    assert clean_chain.escrow().station_count() == count  # was: registered, then "add it to [charge_points]"


def test_missing_tls_files_name_the_setting_and_the_path(net, tmp_path, keyfile, cli):
    config = _config(tmp_path, net, keyfile, tls_cert="nope/cert.pem", tls_key="nope/key.pem")
    code, lines = cli("run", "-c", config)
    assert code == 1 and lines == [f"error: tls_cert: no file at {tmp_path / 'nope' / 'cert.pem'}"], lines


def test_a_corrupt_database_is_named(net, tmp_path, keyfile, cli):
    (tmp_path / "core.sqlite").write_bytes(b"this is not an SQLite file" * 100)
    code, lines = cli("run", "-c", _config(tmp_path, net, keyfile))
    assert code == 1 and lines[-1].startswith(f"error: database {tmp_path / 'core.sqlite'}: "), lines
    assert "unexpected" not in lines[-1]


def test_no_password_and_no_terminal_says_which_variable_to_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "EVN_OPERATOR_PASSWORD"}
    result = subprocess.run(
        [sys.executable, "-m", "core_client.cli", "keys", "create", "--keystore", str(tmp_path / "k.json")],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,  # no controlling terminal, as under systemd or cron
        timeout=60,
    )
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines() == [
        "error: no password: set EVN_OPERATOR_PASSWORD (there is no terminal to ask on)"
    ]
    assert not (tmp_path / "k.json").exists()


def test_operator_register_without_dev_prints_what_the_registrar_runs(clean_chain, tmp_path, cli):
    address = create_keyfile(tmp_path / "new.json", PASSWORD)
    code, lines = cli("operator", "register", "-c", _config(tmp_path, clean_chain, tmp_path / "new.json"))
    assert code == 0 and "registrar" in lines[0] and "core-client check" in lines[-1], lines
    assert any(f'"registerOperator(address,address,string)" {address} {address}' in line for line in lines)
    assert not clean_chain.escrow().operator_of(address).registered  # it only says what to run


# ------------------------------------------------------- issue 17 #15: one line per operator error


@pytest.mark.issue(17, item=15)
def test_a_port_taken_or_a_listen_host_that_does_not_resolve_is_one_line_naming_the_setting(
    net, tmp_path, keyfile, cli
):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        for values, setting in (
            ({"listen_port": port}, "listen_port"),
            ({"listen_port": 0, "control_port": port}, "control_port"),
            ({"listen_host": "no-such-host.invalid", "listen_port": 0}, "listen_host"),
        ):
            code, lines = cli("run", "-c", _config(tmp_path, net, keyfile, **values))
            errors = [line for line in lines if line.startswith("error:")]
            assert code == 1 and errors == [lines[-1]] and setting in lines[-1], lines
            assert "Traceback" not in "\n".join(lines), lines


@pytest.mark.issue(17, item=15)
def test_an_rpc_url_python_cannot_split_is_one_line(net, tmp_path, keyfile, cli, monkeypatch):
    code, lines = cli("run", "-c", _config(tmp_path, net, keyfile, rpc_url="http://[::1"))
    assert code == 1 and len(lines) == 1 and "rpc_url" in lines[0], lines
    from wallet.cli import app as wallet_app

    monkeypatch.setenv("EVN_RPC_URL", "http://[::1")
    monkeypatch.setenv("EVN_DEPLOYMENT", str(net.deployment_file))
    monkeypatch.setenv("EVN_WALLET_HOME", str(tmp_path / "wallet"))
    result = CliRunner().invoke(wallet_app, ["quote", "1", "--kwh", "1"])
    assert result.exit_code == 1 and "http://[::1" in result.output and len(result.output.splitlines()) == 1, (
        result.output
    )


@pytest.mark.issue(17, item=15)
def test_a_taken_station_id_and_a_bogus_command_type_are_said_in_words(clean_chain, tmp_path, keyfile, cli):
    [cp] = cp_ids("TAKEN")
    config = _config(tmp_path, clean_chain, keyfile)
    assert cli("stations", "add", cp, *ADD, "-c", config)[0] == 0
    code, lines = cli("stations", "add", cp, *ADD, "-c", config)
    assert code == 1 and len(lines) == 1 and "ChargePointIdTaken" not in lines[0] and "already" in lines[0], lines
    for command in (
        ["command", "reset", cp, "--type", "Bogus"],
        ["command", "change-availability", cp, "--type", "Bogus"],
        ["command", "trigger", cp, "Bogus"],
    ):
        code, lines = cli(*command, "-c", config, "--url", "http://127.0.0.1:9")  # nothing listens there
        assert code == 1 and len(lines) == 1 and "Bogus" in lines[0] and "daemon" not in lines[0], lines


@pytest.mark.issue(17, item=15)
def test_a_quote_for_absurd_energy_exits_non_zero(net, tmp_path, monkeypatch):
    from wallet.cli import app as wallet_app

    monkeypatch.setenv("EVN_RPC_URL", net.rpc_url)
    monkeypatch.setenv("EVN_DEPLOYMENT", str(net.deployment_file))
    monkeypatch.setenv("EVN_WALLET_HOME", str(tmp_path / "wallet"))
    station = net.add_station(cp_ids("QUOTE")[0], 2)
    for kwh in ("1e400", "2e9", "Infinity"):
        result = CliRunner().invoke(wallet_app, ["quote", str(station), "--kwh", kwh])
        assert result.exit_code == 1 and kwh in result.output, (kwh, result.output)
    assert CliRunner().invoke(wallet_app, ["quote", str(station), "--kwh", "20"]).exit_code == 0
