"""The Core Client as the CPO of roaming eMSPs (issue 20 part 3): a token A we issue, the credentials
handshake with the eMSP as its Sender (POST, PUT, DELETE), our versions and details, judged by the stand-in
eMSP (tests/interop/ocpi_emsp.js, written from the 2.2.1 text, sharing no code with ours) over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from pathlib import Path

from typer.testing import CliRunner, Result

from core_client.cli.main import app
from tools.harness.ocpi.our_cpo import our_cpo
from tools.harness.ocpi.peers import emsp_platform


async def test_an_emsp_registers_with_the_token_a_we_issued_renews_and_unregisters(tmp_path: Path):
    async with our_cpo(tmp_path) as cpo, emsp_platform(tmp_path) as emsp:
        token_a = cpo.peers.issue("ems-roaming")
        assert stat.S_IMODE(cpo.peers.file.path.stat().st_mode) == 0o600

        registered = await emsp.control("register", {"versions_url": cpo.versions_url, "token_a": token_a})
        assert registered["ok"] is True, registered
        [peer] = cpo.peers.all()
        state = (await emsp.control("state"))["registration"]
        assert peer.registered and peer.token_a is None
        assert peer.token_b.get_secret_value() == state["our_token"]
        assert peer.token_c.get_secret_value() == state["their_token"]
        assert [(r.role.value, r.country_code, r.party_id) for r in peer.roles] == [("EMSP", "NL", "EMS")]
        assert token_a not in repr(peer)  # masked everywhere but in the file

        again = await emsp.control("register", {"versions_url": cpo.versions_url, "token_a": token_a})
        assert "ok" not in again and "401" in str(again), again  # token A is used up: our versions refuse it

        renewed = await emsp.control("update-credentials", {})
        assert renewed.get("ok") is True, renewed
        [peer_after] = cpo.peers.all()
        assert peer_after.token_c != peer.token_c
        assert peer_after.token_c.get_secret_value() == (await emsp.control("state"))["registration"]["their_token"]

        assert (await emsp.control("unregister", {}))["ok"] is True
        assert cpo.peers.all() == []
        [refusal] = await emsp.violations()  # our 401 to the used token A, which it records
        assert refusal["violation"].startswith("refused by the other party (HTTP 401, status 2000)"), refusal


async def test_wrong_tokens_get_401_in_the_envelope_and_token_a_opens_only_versions_details_credentials(tmp_path: Path):
    async with our_cpo(tmp_path) as cpo, emsp_platform(tmp_path) as emsp:
        token_a = cpo.peers.issue("ems-roaming")

        async def get(url: str, token: str) -> tuple[int, dict]:
            headers = {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}
            async with emsp.http.get(url, headers=headers) as response:
                return response.status, await response.json()

        status, body = await get(cpo.versions_url, "not-a-token-of-ours")
        assert status == 401 and body["status_code"] == 2000 and "timestamp" in body
        status, body = await get(cpo.versions_url, token_a)
        assert status == 200 and body["data"] == [{"version": "2.2.1", "url": cpo.settings.details_endpoint}]
        status, body = await get(cpo.settings.details_endpoint, token_a)
        assert {(e["identifier"], e["role"]) for e in body["data"]["endpoints"]} >= {("credentials", "RECEIVER")}
        status, body = await get(cpo.settings.url("2.2.1", "credentials"), token_a)
        assert status == 200 and body["data"]["roles"][0]["role"] == "CPO"
        status, body = await get(cpo.settings.url("2.2.1", "locations"), token_a)
        assert (status, body["status_code"]) == (401, 2000)  # the modules want token C


async def test_issue_token_from_the_command_line_registers_an_emsp(tmp_path: Path):
    async with our_cpo(tmp_path) as cpo, emsp_platform(tmp_path) as emsp:
        config = tmp_path / "core-client.toml"
        config.write_text(
            f'database = "{tmp_path / "core.db"}"\n\n[ocpi_cpo]\n'
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in cpo.settings.model_dump(mode="json").items() if v)
        )

        async def core(*args: str) -> Result:
            return await asyncio.to_thread(CliRunner().invoke, app, ["ocpi", *args, "--config", str(config)])

        assert (await core("emsps")).output == "no eMSPs: `core-client ocpi issue-token NAME` issues a token A\n"
        issued = await core("issue-token", "ems-roaming")
        assert issued.exit_code == 0, issued.output
        first, second = issued.output.splitlines()
        token_a = first.removeprefix("token A for ems-roaming: ")
        assert second == f"our OCPI versions URL: {cpo.versions_url}"
        listed = (await core("emsps")).output
        assert listed.startswith("ems-roaming: token A issued ") and token_a not in listed

        assert (await emsp.control("register", {"versions_url": cpo.versions_url, "token_a": token_a}))["ok"]
        listed = (await core("emsps")).output
        assert listed.startswith("ems-roaming: registered ") and listed.endswith(" as EMSP NL/EMS\n")
        taken = await core("issue-token", "ems-roaming")
        assert (taken.exit_code, taken.output.count("\n")) == (1, 1) and "registered already" in taken.output

        salt = "ab" * 32
        bad = await core("mandate", "ems-roaming", "evcard:7:beef")
        assert (bad.exit_code, bad.output.count("\n")) == (1, 1) and "not a card grant" in bad.output
        nobody = await core("mandate", "ems-other", f"evcard:7:{salt}")
        assert nobody.exit_code == 1 and "no eMSP ems-other" in nobody.output
        linked = await core("mandate", "ems-roaming", f"evcard:7:{salt}")
        assert linked.output == "ems-roaming: sessions of its tokens are paid through mandate 7\n"
        assert (await core("emsps")).output.endswith(" as EMSP NL/EMS; mandate 7\n")
        [peer] = cpo.peers.all()
        assert (peer.mandate_id, peer.mandate_salt.get_secret_value()) == (7, salt) and peer.registered
