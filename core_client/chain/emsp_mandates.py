"""A roaming eMSP's payment mandate, read from chain when one of its tokens is to start a session
(OCPI START_SESSION, :mod:`core_client.ocpi.cpo.roaming`): the mandate's record, whether it names our
operator, and whether the token may use it (a mandate for any token, or the token's reference linked).
The token's reference is ``keccak256(salt || uid)`` (:func:`ev_network.mandates.token_ref`) with the salt
of the eMSP's grant: what goes on chain with the session names no token of the eMSP's customers."""

from __future__ import annotations

from web3 import Web3

from core_client.sessions.cards import Card, CardMandate
from ev_network.errors import chain_errors
from ev_network.mandates import Mandates, token_ref


def token_card(mandates: Mandates, operator: str, mandate_id: int, salt: bytes, uid: str) -> Card | str:
    """The eMSP's token ``uid`` as a card of mandate ``mandate_id``, or why it is none (ChainUnavailable:
    the chain did not answer)."""
    ref = token_ref(salt, uid)
    with chain_errors(mandates.w3):
        m = mandates.get(mandate_id)
        if int(m.payer, 16) == 0:
            return f"mandate {mandate_id} does not exist on chain"
        named = mandates.is_operator(mandate_id, Web3.to_checksum_address(operator))
        linked = m.any_token or mandates.is_linked(mandate_id, ref)
    if not linked:
        return f"token {uid} is not linked to mandate {mandate_id}"
    mandate = CardMandate.of(m, salt, named, frozenset({ref}))
    return Card(mandate, ref)
