"""Defects of issue 9 (#10, #11) on the wallet and bindings side: every failure is one line that says
what is wrong and where, fast. A real TCP server that never answers, real corrupted keyfiles, a real
deployment whose addresses hold no code, a real subprocess without a terminal."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from eth_account import Account

from ev_network.chain import BadRpcUrl, connect, http_web3
from ev_network.cli_errors import clean_errors
from ev_network.deployment import Deployment
from ev_network.errors import (
    ChainUnavailable,
    DeploymentError,
    EVNetworkError,
    NodeError,
    ValueOutOfRange,
    chain_errors,
)
from ev_network.events import EventReader
from ev_network.pricing import Tariff
from ev_network.session_ids import session_label
from tools.harness.chain import Net
from tools.harness.wallet import PASSWORD, Cli, driver_wallet, nonce, operator_settle, operator_start, wallet_config
from wallet.keystore import Keystore

ROOT = Path(__file__).resolve().parents[2]
FAKE = Deployment(chain_id=31337, token="0x" + "11" * 20, escrow="0x" + "22" * 20, deployment_block=0,
                  start_timeout=300, max_duration=86_400, reclaim_grace=3_600)  # fmt: skip


@contextmanager
def silent_server() -> Iterator[str]:
    """An HTTP URL whose server accepts every connection and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def offline_cli(tmp_path: Path, rpc_url: str = "http://127.0.0.1:9") -> Cli:
    """ev-wallet with a home and a deployment file, pointed at ``rpc_url`` (no chain needed)."""
    FAKE.save(tmp_path / "deployment.json")
    return Cli(SimpleNamespace(rpc_url=rpc_url, deployment_file=tmp_path / "deployment.json"), tmp_path / "home")


def one_line_error(result, *parts: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output and "unexpected" not in result.output
    assert result.output.startswith("error: "), result.output
    for part in parts:
        assert part in result.output, (part, result.output)
    return result.output


# ------------------------------------------------------------ #10 endless waits
def test_a_node_that_accepts_and_never_answers_fails_within_seconds(tmp_path: Path) -> None:
    with silent_server() as url:
        cli = offline_cli(tmp_path, url)
        Keystore(wallet_config(cli_net(cli), tmp_path / "home")).create(PASSWORD)
        began = time.monotonic()
        result = cli("balance", ok=False)
        took = time.monotonic() - began
        assert took < 10, took  # was 153 s: 30 s read timeout, retried by web3
        one_line_error(result, f"cannot reach the chain at {url}", "no answer within")
        began = time.monotonic()
        with pytest.raises(ChainUnavailable, match="sent no answer within"):
            connect(url, timeout=30)  # waiting for a node to start does not mean waiting for a silent one
        assert time.monotonic() - began < 10


def cli_net(cli: Cli) -> SimpleNamespace:
    return SimpleNamespace(rpc_url=cli.env["EVN_RPC_URL"], deployment_file=Path(cli.env["EVN_DEPLOYMENT"]))


def test_network_errors_become_chain_unavailable_naming_the_url() -> None:
    w3 = http_web3("http://127.0.0.1:9", timeout=1, retries=False)
    refused = r"cannot reach the chain at http://127.0.0.1:9: Connection refused"
    with pytest.raises(ChainUnavailable, match=refused), chain_errors(w3):
        w3.eth.get_block("latest")
    with pytest.raises(BadRpcUrl, match="'notaurl' is not a JSON-RPC node URL"):
        http_web3("notaurl")


# ------------------------------------------------------- #11 corrupted keystores
def _damage(path: Path, how: str) -> None:
    data = json.loads(path.read_text())
    if how == "no crypto":
        del data["crypto"]
    elif how == "md5":
        data["crypto"]["kdf"] = "md5"
    elif how == "no salt":
        del data["crypto"]["kdfparams"]["salt"]
    if how == "binary":
        path.write_bytes(b"\xff\xfe\x00\x9c" * 64)
    else:
        path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("no crypto", "it has no crypto field"),
        ("md5", "crypto.kdf is 'md5': input should be 'scrypt' or 'pbkdf2'"),
        ("no salt", "it has no crypto.kdfparams.salt field"),
        ("binary", "it holds binary data, not a JSON keyfile"),
    ],
)
def test_a_damaged_keystore_is_named_with_what_is_wrong(tmp_path: Path, how: str, problem: str) -> None:
    cli = offline_cli(tmp_path)
    keystore = Keystore(wallet_config(cli_net(cli), tmp_path / "home"))
    address = keystore.create(PASSWORD)
    _damage(keystore.path_of(address), how)
    result = cli("stop", "1", "--account", address, ok=False)
    one_line_error(result, f"keystore {keystore.path_of(address)} is damaged: {problem}")


# ------------------------------------------------- #11 a deployment without code
def test_a_deployment_whose_addresses_hold_no_code_names_the_missing_contract(net: Net, tmp_path: Path) -> None:
    Keystore(wallet_config(net, tmp_path / "home")).create(PASSWORD)
    for field, what, command in [("escrow", "SessionEscrow", "stations"), ("token", "deposit token", "balance")]:
        empty = Account.create().address
        path = tmp_path / f"{field}.json"
        net.deployment.model_copy(update={field: empty}).save(path)
        cli = Cli(SimpleNamespace(rpc_url=net.rpc_url, deployment_file=path), tmp_path / "home")
        one_line_error(cli(command, ok=False), f"no {what} contract at {empty} on chain 31337 ({net.rpc_url})")
        with pytest.raises(DeploymentError, match=f"no {what} contract at {empty}"):
            connect(net.rpc_url, Deployment.load(path))


def test_a_broken_deployment_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    cli = offline_cli(tmp_path)
    Keystore(wallet_config(cli_net(cli), tmp_path / "home")).create(PASSWORD)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**json.loads(FAKE.model_dump_json()), "token": "0x1234"}))
    one_line_error(cli("balance", "--deployment", str(broken), ok=False),
                   f"deployment file {broken} is not valid: token: not an address")  # fmt: skip
    broken.write_text(json.dumps({**json.loads(FAKE.model_dump_json()), "deployment_block": -1}))
    one_line_error(cli("balance", "--deployment", str(broken), ok=False),
                   "deployment_block: input should be greater than or equal to 0")  # fmt: skip
    broken.write_text("{")
    one_line_error(cli("balance", "--deployment", str(broken), ok=False), f"deployment file {broken} is not valid")


# -------------------------------------------- #11 values out of an ABI type's range
def test_values_out_of_the_abi_range_are_refused_before_sending_naming_the_limit(clean_chain: Net) -> None:
    net = clean_chain
    station = net.add_station("CP-RANGE")
    with pytest.raises(ValueOutOfRange, match=r"getStation: stationId 1099511627776 is more than a uint32 holds "
                                              r"\(at most 4294967295\)"):  # fmt: skip
        net.escrow().get_station(2**40)
    operator = net.escrow(net.operator)
    before = nonce(net, net.operator.address)
    with pytest.raises(ValueOutOfRange, match=rf"setTariff: tariff.pricePerKWh {2**96} is more than a uint96 holds"):
        operator.set_tariff(station, Tariff(price_per_kwh=2**96, session_fee=0))
    with pytest.raises(ValueOutOfRange, match=r"addStation: tariff\.sessionFee -1 is less than a uint80 holds"):
        operator.add_station("CP-NEG", 1, Tariff(price_per_kwh=1, session_fee=-1))
    with pytest.raises(ValueOutOfRange, match=r"settleBatch: meterStops\[1\] 1099511627776 is more than a uint40"):
        operator.settle_batch([1, 2], [0, 2**40])
    assert nonce(net, net.operator.address) == before  # nothing was sent


def test_a_station_number_too_large_for_an_id_is_looked_up_as_a_charge_point(clean_chain: Net, tmp_path) -> None:
    net = clean_chain
    result = Cli(net, tmp_path / "home")("quote", str(2**40), "--kwh", "1", ok=False)
    one_line_error(result, f"there is no station with id or charge point id '{2**40}'")
    net.add_station(str(2**40))  # digits are a valid charge point id
    assert Cli(net, tmp_path / "home").json("quote", str(2**40), "--kwh", "1")["energy_wh"] == 1_000


# ---------------------------------------------- #11 no password, no terminal
def test_no_password_and_no_terminal_says_which_variable_to_set(tmp_path: Path) -> None:
    cli = offline_cli(tmp_path)
    Keystore(wallet_config(cli_net(cli), tmp_path / "home")).create(PASSWORD)
    env = {k: v for k, v in os.environ.items() if k != "EVN_WALLET_PASSWORD"}
    env |= {k: v for k, v in cli.env.items() if k != "EVN_WALLET_PASSWORD"}
    for args in (["stop", "1"], ["account", "create"]):
        done = subprocess.run([sys.executable, "-m", "wallet.cli", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, start_new_session=True, timeout=60)  # fmt: skip
        assert done.returncode == 1, done
        assert done.stderr == "error: no password: set EVN_WALLET_PASSWORD (there is no terminal to ask for it)\n"
    key_file = tmp_path / "missing.key"
    one_line_error(cli("account", "import", "--key-file", str(key_file), ok=False),
                   f"cannot read the key file {key_file}: No such file or directory")  # fmt: skip


# ------------------------------------------------------ one error base per package
def test_the_cli_catches_only_the_error_base_and_the_runtime_package_has_no_cli_or_dev_chain_code() -> None:
    @clean_errors()
    def known() -> None:
        raise EVNetworkError("the node\nsaid no")

    @clean_errors()
    def bug() -> None:
        raise KeyError("a bug keeps its traceback")

    with pytest.raises(SystemExit) as exited:
        known()
    assert exited.value.code == 1
    with pytest.raises(KeyError):
        bug()
    modules = [p.stem for p in (ROOT / "ev_network").glob("*.py") if p.stem != "__init__"]
    loaded = "[m for m in ('typer', 'brownie') if m in sys.modules]"
    code = "import sys\n" + "".join(f"import ev_network.{m}\n" for m in modules) + f"print({loaded})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done
    # starting processes (Anvil, Brownie) is the dev chain's business: tools/devchain.py
    assert not [p.name for p in (ROOT / "ev_network").rglob("*.py") if "import subprocess" in p.read_text()]


# ------------------------------------------------------------- files it cannot write
def test_an_invoice_that_cannot_be_written_names_the_path(clean_chain: Net, tmp_path: Path) -> None:
    net = clean_chain
    station = net.add_station("CP-WRITE")
    driver = net.drivers[3]
    net.fund(driver, 10 * 10**18)
    session_id = driver_wallet(net, driver).open_session(station, 1, 5 * 10**18)
    operator_start(net, session_id)
    operator_settle(net, session_id, meter_stop=1_000)
    cli = Cli(net, tmp_path / "home")
    Keystore(wallet_config(net, tmp_path / "home")).import_key(driver.key.hex(), PASSWORD)
    for fmt in ("text", "pdf"):
        target = Path("/dev/null") / f"invoice.{fmt}"
        result = cli("invoice", session_label(session_id), "--format", fmt, "--output", str(target), ok=False)
        one_line_error(result, f"cannot write the invoice to {target}: ")


class _RefusingNode(BaseHTTPRequestHandler):
    """A JSON-RPC node that answers eth_chainId and refuses every log query, as public providers do
    for ranges they do not serve."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if request["method"] == "eth_chainId":
            answer = {"result": "0x7a69"}
        else:
            answer = {"error": {"code": -32005, "message": "query exceeds max block range 1000"}}
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], **answer}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_node_that_refuses_a_log_query_is_named_with_the_blocks_and_its_reason() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingNode)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        reader = EventReader(connect(url, timeout=2), FAKE.escrow)
        with pytest.raises(NodeError, match=f"{url} refused the escrow's logs of blocks 0 to 4999: query exceeds max"):
            reader.fetch(0, 20_000)
    finally:
        server.shutdown()
        server.server_close()
