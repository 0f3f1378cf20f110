"""``core-client ocpi ...`` from the command line, with a config file, the independent CPO platform and a
real chain: every outcome one line, never a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner, Result

from core_client.cli.main import app
from core_client.config import settings_to_toml
from tools.harness.chain import Net
from tools.harness.core import PASSWORD, settings_for
from tools.harness.ocpi.our_emsp import free_port, settings
from tools.harness.ocpi.peers import TOKEN_A, cpo_platform


async def test_register_status_stations_import_from_the_command_line(
    tmp_path: Path, clean_chain: Net, keyfile: Path
) -> None:
    net = clean_chain
    async with cpo_platform(tmp_path) as cpo:
        ocpi = settings(free_port(), versions_url=cpo.versions_url, token_a=TOKEN_A)
        config = tmp_path / "core-client.toml"
        config.write_text(settings_to_toml(settings_for(net, tmp_path, keyfile, {}, ocpi=ocpi)))

        async def core(*args: str) -> Result:
            run = CliRunner().invoke
            return await asyncio.to_thread(
                run, app, ["ocpi", *args, "--config", str(config)], env={"EVN_OPERATOR_PASSWORD": PASSWORD}
            )

        status = await core("status")
        assert (status.exit_code, status.output) == (
            0,
            f"not registered: `core-client ocpi register` connects to {cpo.versions_url}\n",
        )
        registered = await core("register")
        assert registered.exit_code == 0, registered.output
        assert registered.output.startswith(f"registered with the CSMS at {cpo.versions_url} as eMSP DE/EVN")
        again = await core("register")
        assert again.exit_code == 1 and again.output.count("\n") == 1 and "already registered" in again.output
        assert "Traceback" not in again.output

        stations = await core("stations")
        assert stations.exit_code == 0, stations.output
        assert "LOC-1/EVSE-2  DE*EVP*E0002  AVAILABLE  -> would register as DE*EVP*E0002" in stations.output
        imported = await core("import", "DE*EVP*E0002", "EVSE-5")
        assert imported.exit_code == 0, imported.output
        first, second = imported.output.splitlines()
        assert first.startswith("LOC-1/EVSE-2: station ") and "0.357/kWh" in first
        assert second.startswith("LOC-2/EVSE-5: not imported: tariff DE/EVP/T-TIME-OF-DAY")
        station_id = int(first.split()[2])
        assert net.escrow().get_station(station_id).charge_point_id == "DE*EVP*E0002"
        listed = await core("stations", "--json")
        assert f'"station_id": {station_id}' in listed.output

        nothing = await core("import")
        assert (nothing.exit_code, nothing.output) == (1, "error: name the EVSEs to import, or give --all\n")
        assert (await core("unregister")).output.startswith("unregistered from ")


def test_without_an_ocpi_section_one_line(tmp_path: Path) -> None:
    config = tmp_path / "core-client.toml"
    config.write_text('database = "core.sqlite"\n')
    result = CliRunner().invoke(app, ["ocpi", "status", "--config", str(config)])
    assert (result.exit_code, result.output) == (
        1,
        "error: no [ocpi] section in the config (see examples/core-client.toml)\n",
    )
