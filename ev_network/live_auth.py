"""The signed request for a session's live data, shared by the server (``core_client.web.live``) and the
client (``wallet.live_client``).

A Core Client shows a session's live data to that session's driver only. The driver proves it by
signing, with the wallet's key, a short-lived request over the session id: EIP-191 ``personal_sign`` of
:func:`live_message`, ``evn-live:<session id, 0x + 64 hex digits>:<expiry, unix seconds>``. No shared
secret: the signature is good for that session only, and only until it expires.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from ev_network.session_ids import hex_session_id

LIVE_PREFIX = "evn-live"


def live_message(session_id: int, expires: int) -> str:
    """The text a driver signs to read ``session_id``'s live data until ``expires`` (unix seconds)."""
    return f"{LIVE_PREFIX}:{hex_session_id(session_id)}:{expires}"


def sign_live_request(account: LocalAccount, session_id: int, expires: int) -> str:
    """The EIP-191 signature (0x hex) of :func:`live_message` by ``account``."""
    signed = account.sign_message(encode_defunct(text=live_message(session_id, expires)))
    return "0x" + signed.signature.hex().removeprefix("0x")


def live_signer(session_id: int, expires: int, signature: str) -> str:
    """The address that signed this request (raises ValueError for a malformed signature)."""
    return Account.recover_message(encode_defunct(text=live_message(session_id, expires)), signature=signature)
