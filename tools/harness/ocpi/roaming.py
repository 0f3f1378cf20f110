"""A roaming eMSP with a payment mandate naming our operator, registered with a running Core Client as its
CPO (issue 20 part 3): the daemon serving [ocpi_cpo] with one station and the stand-in eMSP
(tests/interop/ocpi_emsp.js)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ev_network.mandates import Mandates, format_grant, new_salt
from tools.harness.chain import TOKEN, Net
from tools.harness.core import Core, cp_ids, funded_driver, running_core
from tools.harness.ocpi.our_cpo import cpo_section
from tools.harness.ocpi.peers import StandInEmsp, emsp_platform

CAP, TOTAL = 20 * TOKEN, 50 * TOKEN
FAST_METER = {"max_power_kw": 1_000_000}  # the ocpp-rpc charge point meters 2.1 kWh in well under a second


async def emsp_mandate(net: Net, index: int) -> tuple[Mandates, int, str]:
    """A funded eMSP account's mandate for any of its tokens, naming our operator: (its Mandates, id, grant)."""
    payer = await funded_driver(net, index)  # funded, and the escrow may pull from it (approval)
    mandates = Mandates(net.w3, net.deployment, net.sender(payer))
    expiry = net.w3.eth.get_block("latest")["timestamp"] + 86_400
    receipt = await asyncio.to_thread(mandates.create, [net.operator.address], CAP, TOTAL, expiry, any_token=True)
    mandate_id = mandates.mandate_id_from(receipt)
    return mandates, mandate_id, format_grant(mandate_id, new_salt())


@contextlib.asynccontextmanager
async def roaming(
    net: Net, tmp_path: Path, keyfile: Path, grant: str | None, **cpo_settings: Any
) -> AsyncIterator[tuple[Core, StandInEmsp, str]]:
    """The daemon serving [ocpi_cpo] (with ``cpo_settings``) with one station, the eMSP registered (and linked
    to ``grant``)."""
    [cp] = cp_ids("ROAM")
    cpo = cpo_section(tmp_path, cp).model_copy(update=cpo_settings)
    async with (
        emsp_platform(tmp_path) as emsp,
        running_core(net, tmp_path, keyfile, {cp: 1}, ocpi_cpo=cpo, **FAST_METER) as core,
    ):
        service = core.daemon.ocpi_cpo
        token_a = service.peers.issue("ems-roaming")
        assert (await emsp.control("register", {"versions_url": cpo.versions_endpoint, "token_a": token_a}))["ok"]
        if grant is not None:
            service.peers.link_mandate("ems-roaming", grant)
        yield core, emsp, cp
