"""`make demo` itself: the whole journey on a fresh chain, checked through its JSON summary."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ev_network.session_ids import driver_of
from scripts.demo_chain import StaleState, _existing_deployment

ROOT = Path(__file__).resolve().parents[2]


def test_demo_settles_three_sessions_that_end_three_ways_and_its_balances_add_up(tmp_path):
    summary_file = tmp_path / "summary.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.demo",
            "--fresh",
            "--state-dir",
            str(tmp_path / "state"),
            "--summary",
            str(summary_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads(summary_file.read_text())
    assert summary["ok"] is True

    sessions = summary["sessions"]
    assert sorted(s["scenario"] for s in sessions) == ["budget", "driver", "unplug"]
    assert all(s["state"] == "settled" for s in sessions)
    # the driver's session at the signing station settled on its meter's records, verified by the wallet
    assert {s["scenario"]: s["meter_verified"] for s in sessions} == {"driver": True, "budget": None, "unplug": None}
    assert "Meter     VERIFIED" in result.stdout and "VAT 19 %" in result.stdout
    assert len({s["session_id"] for s in sessions}) == 3 == len({s["label"] for s in sessions})
    # one driver, three sessions at once: three lanes; ids in JSON as 0x + 64 hex digits
    assert all(re.fullmatch(r"0x[0-9a-f]{64}", s["session_id"]) for s in sessions)
    assert len({s["session_id"][:42] for s in sessions}) == 1  # the same driver in each id
    for s in sessions:
        assert f"session {s['label']} (" in result.stdout
    assert not re.search(r"\d{40}", result.stdout)  # no 78-digit decimal session ids on screen

    before, after = summary["balances"]["before"], summary["balances"]["after"]
    changes = {name: after[name] - before[name] for name in before}
    assert sum(changes.values()) == 0, changes  # tokens only moved between driver, payout and escrow
    assert changes["escrow"] == 0  # every deposit left the escrow again
    assert changes["driver"] < 0 < changes["operator payout"]
    for line in ("INVOICE EVN-31337-", "TOTAL", "the changes add up to zero", "three sessions and a card session"):
        assert line in result.stdout

    # the card session: linked by the driver, its grant accepted by the operator, tapped, settled, invoiced to the payer
    card = summary["card"]
    assert card["state"] == "settled" and card["payer"] == driver_of(int(sessions[0]["session_id"], 16))
    assert 0 < card["total"] <= 12 * 10**18  # within the card's cap per session
    assert re.fullmatch(r"0x[0-9a-f]{64}", card["session_id"]) and card["session_id"] not in {
        s["session_id"] for s in sessions
    }
    for line in (
        "driver links card 04A2B3C4D5E6F7",
        "operator accepts the card's grant",
        "card tapped at VOLT-BER-002/2",
    ):
        assert line in result.stdout
    assert result.stdout.count("INVOICE EVN-31337-") == 4


def test_kept_demo_state_of_an_older_contract_version_is_recognised(net, tmp_path):
    """``make demo`` continues its kept chain; an escrow there without a function of the current ABI
    (here: the token's address standing in for an old escrow) is stale, and the demo starts over."""
    path = tmp_path / "deployment.json"
    net.deployment.save(path)
    assert _existing_deployment(net.w3, path) == net.deployment
    net.deployment.model_copy(update={"escrow": net.deployment.token}).save(path)
    with pytest.raises(StaleState, match="older EV Network version"):
        _existing_deployment(net.w3, path)
    net.deployment.model_copy(update={"escrow": "0x" + "00" * 19 + "01"}).save(path)
    assert _existing_deployment(net.w3, path) is None  # nothing deployed there (another chain): deploy


def _run_demo(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``make demo DEMO_ARGS=--<mode>`` in ``tmp_path``: the finished process and its summary's ``mode`` part."""
    summary_file = tmp_path / "summary.json"
    command = [sys.executable, "-m", "scripts.demo", f"--{mode}", "--state-dir", str(tmp_path / "state")]
    result = subprocess.run(
        [*command, "--summary", str(summary_file)], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result, json.loads(summary_file.read_text())[mode]


def test_proxy_demo_runs_a_csms_session_and_a_paid_one_and_verifies_the_record(tmp_path):
    result, proxy = _run_demo(tmp_path, "proxy")
    assert proxy["card_transaction"] == 1001 and proxy["paid_transaction"] == 1002  # both the CSMS's ids
    assert proxy["paid_session"]["state"] == "settled"
    assert proxy["records"] == {"logged": 2, "anchored": 2, "waiting": 0}
    assert proxy["csms_calls"]["StartTransaction"] == 2 == proxy["csms_calls"]["StopTransaction"]
    assert "record 0 is in anchor 0 of operator" in result.stdout  # ev-wallet verify-record accepted it


def test_ocpi_demo_settles_a_wallet_session_through_the_csms_ocpi_interface(tmp_path):
    result, ocpi = _run_demo(tmp_path, "ocpi")
    assert ocpi["session"]["state"] == "settled" and ocpi["cdr"] == "CDR-00001"
    assert ocpi["violations"] == []  # the stand-in CPO found nothing against 2.2.1 in what the Core Client sent
    assert "registered with the CSMS at" in result.stdout and "LOC-1/EVSE-2: station 4 registered" in result.stdout
