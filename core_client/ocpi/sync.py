"""Getting back in sync with the CSMS after messages were lost (2.2.1, "Offline behaviour": messages are
not queued; the receiver GETs what it missed): CDRs that were never pushed to us are pulled and taken
like pushed ones, each once; the Session of a start whose Session was not pushed is pulled."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from core_client.ocpi.csms import Csms
from core_client.ocpi.inbox import Refusal
from core_client.ocpi.models import Session
from core_client.ocpi.receivers import Receivers

CDRS = "cdrs"
OVERLAP = timedelta(hours=1)  # our clock and the CSMS's may differ: ask a little further back (duplicates are skipped)


async def pull_cdrs(csms: Csms, receivers: Receivers) -> list[str]:
    """The CSMS's CDRs last updated since our previous pull (all of them the first time), each not yet
    held handed to the inbox as a POSTed one would be; the next pull resumes from this one's start.
    One line per CDR taken, refused or invalid."""
    started = datetime.now(timezone.utc)
    since = receivers.mirror.cursor(CDRS)
    registration = csms.registration
    pulled = await csms.cdrs(None if since is None else since - OVERLAP)
    report = [f"CDR skipped (not valid OCPI 2.2.1): {problem}" for problem in pulled.problems]
    for cdr in pulled.objects:
        name = f"{cdr.country_code}/{cdr.party_id}/{cdr.id}"
        if not registration.is_cpo(cdr.country_code, cdr.party_id):
            report.append(f"CDR {name} skipped: not a party of the CSMS")
            continue
        try:
            if await receivers.take_cdr(cdr):
                report.append(f"CDR {name} taken (it had not been pushed)")
        except Refusal as refusal:
            report.append(f"CDR {name} refused: {refusal}")
    receivers.mirror.set_cursor(CDRS, started)
    return report


async def pull_sessions(csms: Csms, token_uid: str, since: datetime) -> list[Session]:
    """The CSMS's Sessions (its own) of the token ``token_uid``, last updated since ``since``."""
    registration = csms.registration
    pulled = await csms.sessions(since - OVERLAP)
    return [
        s for s in pulled.objects if s.cdr_token.uid == token_uid and registration.is_cpo(s.country_code, s.party_id)
    ]
