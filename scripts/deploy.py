"""Deploy the EV Network (token, meter verifier, session escrow, payment mandates, record anchor, operator
profiles) and write the deployment file.

    brownie run scripts/deploy.py --network evnet-anvil      (make deploy)

Environment: EVN_RPC_URL (the node, used by the network definition), EVN_DEPLOYMENT (output file,
default deployments/local.json), EVN_DEPLOYER_KEY (hex private key; on a local Anvil, chain id
31337, Anvil's first development account is used when unset), EVN_START_TIMEOUT (s, default 300),
EVN_MAX_DURATION (s, default 86400), EVN_RECLAIM_GRACE (s, default 3600), EVN_TOKEN (an existing
ERC-20 to use instead of deploying EVToken, e.g. a stablecoin)."""

import os
from pathlib import Path

from brownie import EVToken, OCMFVerifier, OperatorProfile, PaymentMandates, RecordAnchor, SessionEscrow, chain, network

from ev_network.deployment import Deployment
from ev_network.mandates import MANDATES_ROLE
from scripts._common import account_from_env


def main() -> Deployment:
    admin = account_from_env("EVN_DEPLOYER_KEY", 0)
    start_timeout = int(os.environ.get("EVN_START_TIMEOUT", 300))
    max_duration = int(os.environ.get("EVN_MAX_DURATION", 86400))
    reclaim_grace = int(os.environ.get("EVN_RECLAIM_GRACE", 3600))
    tx = {"from": admin, "required_confs": 1}

    first_block = chain.height + 1
    token_address = os.environ.get("EVN_TOKEN")
    if not token_address:
        token_address = EVToken.deploy("EV Network Euro", "EVE", admin, tx).address
    verifier = OCMFVerifier.deploy(tx)  # stateless: checks signed meter records for the escrow's settleSigned
    escrow = SessionEscrow.deploy(token_address, start_timeout, max_duration, reclaim_grace, admin, verifier, tx)
    mandates = PaymentMandates.deploy(escrow.address, tx)  # cards and eMSPs: sessions opened under a mandate
    escrow.grantRole(MANDATES_ROLE, mandates.address, tx)
    record_anchor = RecordAnchor.deploy(escrow.address, tx)  # operators of this escrow anchor their records
    profiles = OperatorProfile.deploy(escrow.address, tx)  # and publish their invoices' legal data

    deployment = Deployment(
        chain_id=chain.id,
        token=token_address,
        escrow=escrow.address,
        deployment_block=first_block,
        start_timeout=start_timeout,
        max_duration=max_duration,
        reclaim_grace=reclaim_grace,
        rpc_url=network.web3.provider.endpoint_uri,
        record_anchor=record_anchor.address,
        operator_profile=profiles.address,
        meter_verifier=verifier.address,
        payment_mandates=mandates.address,
    )
    out = Path(os.environ.get("EVN_DEPLOYMENT", "deployments/local.json"))
    deployment.save(out)
    print(f"EV Network deployed: token {token_address}, escrow {escrow.address}; wrote {out}")
    return deployment
