"""The deployment file written by ``scripts/deploy.py`` and read by every Python component."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel

ABI_DIR = Path(__file__).parent / "abi"


@cache
def load_abi(contract: str) -> list[dict]:
    """The ABI of ``contract`` (EVToken, SessionEscrow, PlainToken, RecordAnchor) as shipped with the package."""
    return json.loads((ABI_DIR / f"{contract}.json").read_text())


class Deployment(BaseModel):
    """Where the EV Network lives on one chain."""

    chain_id: int
    token: str
    escrow: str
    deployment_block: int
    start_timeout: int
    max_duration: int
    reclaim_grace: int
    rpc_url: str | None = None
    record_anchor: str | None = None  # the RecordAnchor contract; None in files from before it existed

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        """Read a deployment file; a missing file gets an error that says how to make one."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"deployment file {path} not found: deploy first (make deploy, or "
                "brownie run scripts/deploy.py --network evnet-anvil)"
            )
        return cls.model_validate_json(path.read_text())

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n")
