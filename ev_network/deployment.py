"""The deployment file written by ``scripts/deploy.py`` and read by every Python component."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, NonNegativeInt, PositiveInt
from web3 import Web3

from ev_network.errors import DeploymentError, read_json_model

ABI_DIR = Path(__file__).parent / "abi"
HOW_TO_DEPLOY = "deploy first (make deploy, or brownie run scripts/deploy.py --network evnet-anvil)"


@cache
def load_abi(contract: str) -> list[dict]:
    """The ABI of ``contract`` (EVToken, SessionEscrow, PlainToken, RecordAnchor, OperatorProfile, PaymentMandates) as shipped with the package."""
    return json.loads((ABI_DIR / f"{contract}.json").read_text())


def _address(value: str) -> str:
    if not Web3.is_address(value):
        raise ValueError("not an address (0x and 40 hex digits)")
    return Web3.to_checksum_address(value)


Address = Annotated[str, AfterValidator(_address)]


class Deployment(BaseModel):
    """Where the EV Network lives on one chain."""

    chain_id: PositiveInt
    token: Address
    escrow: Address
    deployment_block: NonNegativeInt
    start_timeout: NonNegativeInt
    max_duration: NonNegativeInt
    reclaim_grace: NonNegativeInt
    rpc_url: str | None = None
    record_anchor: str | None = None  # the RecordAnchor contract; None in files from before it existed
    operator_profile: str | None = None  # the OperatorProfile contract (invoices' legal data); optional
    meter_verifier: str | None = None  # the OCMFVerifier the escrow checks signed records with (informational)
    payment_mandates: str | None = None  # the PaymentMandates contract (cards, eMSPs); None before it existed

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        """Read a deployment file; DeploymentError names the file and says what is wrong with it."""
        path = Path(path)
        if not path.exists():
            raise DeploymentError(f"deployment file {path} not found: {HOW_TO_DEPLOY}")
        return read_json_model(cls, path, DeploymentError, "deployment file")

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n")
