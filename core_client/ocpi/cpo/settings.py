"""The ``[ocpi_cpo]`` section: our party as a CPO toward roaming eMSPs and hubs, where our CPO endpoints
listen, and the file that keeps the eMSPs' credentials. See ``docs/operations.md``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from core_client.ocpi.cpo.catalog import Site
from core_client.ocpi.models.enums import Role
from core_client.ocpi.settings import PartySettings


class CpoSettings(PartySettings):
    """``[ocpi_cpo]``: the Core Client as the CPO of its stations for roaming eMSPs."""

    ROLE: ClassVar[Role] = Role.CPO

    port: int = Field(9005, ge=0, le=65535)
    vat_percent: Decimal | None = Field(None, ge=0, le=100)  # the VAT our chain prices include (Tariffs net of it)
    authorize_timeout_s: float = Field(4.0, gt=0)  # a tapped eMSP token: how long its eMSP is asked, at most
    tokens_pull_s: float = Field(3600.0, gt=0)  # the eMSPs' Token lists pulled again (date_from) this often
    peers_file: Path | None = None  # default: next to the database, <database>.ocpi-emsps (mode 0600)
    sites: dict[str, Site] = Field(
        default_factory=dict
    )  # charge point id -> where it is: only stations with a site are published

    def peers_path(self, database: Path | str) -> Path:
        """The eMSPs' file: ``peers_file`` (which a postgresql:// database needs, checked at load), else
        beside the SQLite database."""
        path = Path(database)
        return self.peers_file or path.with_name(path.name + ".ocpi-emsps")
