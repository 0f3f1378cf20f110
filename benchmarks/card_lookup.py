"""Card lookups at scale: how long a tap takes to find its card, and a local-list sync to re-check the cards,
with ``--cards`` cards linked under ``--mandates`` granted mandates (each its own salt). Pure Python, no
chain, no network: the Core Client's card index (:class:`core_client.sessions.cards.CardIndex`) and wanted
list (:class:`core_client.sessions.local_list.WantedList`) against the linear scan they replace.

    python -m benchmarks.card_lookup [--cards 10000] [--mandates 100] [--taps 20]

Figures: ``first_tap_ms`` (``--taps`` cards never tapped: a keccak per distinct salt until its own),
``unknown_first_tap_ms`` (an idTag of no card: every salt), ``tap_us`` (every
card, tapped before: one dict lookup) and ``taps_per_s``; ``linear_tap_ms`` (every mandate's reference computed, as
before); ``sync_idle_ms`` (a sync when nothing changed), ``sync_one_mandate_ms`` (a sync after one
mandate changed) and ``linear_sync_ms`` (every seen card found again by a linear scan, as before, timed
on ``--linear-sample`` cards and scaled). The last line of output is the JSON result.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace

from core_client.sessions.cards import CardIndex, CardMandate
from core_client.sessions.local_list import WantedList
from ev_network.mandates import Mandate, new_salt, token_ref


def mandates(cards: int, count: int) -> tuple[list[CardMandate], list[str]]:
    """``count`` mandates, their own salt each, linking ``cards`` card uids between them."""
    uids = [f"04{n:012X}" for n in range(cards)]
    out = []
    for i in range(count):
        salt = new_salt()
        refs = frozenset(token_ref(salt, uid) for uid in uids[i::count])
        record = Mandate(i + 1, "0x" + "11" * 20, 20, 10**6, 0, 4_000_000_000, False, False)
        out.append(CardMandate.of(record, salt, True, refs))
    return out, uids


def linear_find(granted: list[CardMandate], uid: str) -> CardMandate | None:
    """The lookup the index replaces: every granted mandate's reference of ``uid`` computed, in turn."""
    return next((m for m in granted if token_ref(m.salt, uid) in m.token_refs), None)


def timed(work, repeat: int = 1) -> float:
    """Seconds per call of ``work``."""
    began = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - began) / repeat


def run(cards: int, count: int, taps: int, linear_sample: int) -> dict:
    granted, uids = mandates(cards, count)
    index = CardIndex(granted)
    sample = random.Random(1).sample(uids, taps)
    first = timed(lambda: [index.find(uid) for uid in sample]) / len(sample)
    unknown = timed(lambda: [index.find(f"FF{n:012X}") for n in range(taps)]) / taps
    linear = timed(lambda: [linear_find(granted, uid) for uid in sample]) / len(sample)
    for uid in uids:
        index.find(uid)  # every card tapped once: all of them in the lists
    again = timed(lambda: [index.find(uid) for uid in uids], 5) / len(uids)
    wanted = WantedList(lambda _: 0)
    full_ms = timed(lambda: wanted.update(index, uids, time.time())) * 1000
    idle_ms = timed(lambda: wanted.update(index, uids, time.time()), 20) * 1000
    changed = CardIndex([replace(granted[0], revoked=True), *granted[1:]], previous=index)
    one_ms = timed(lambda: wanted.update(changed, uids, time.time())) * 1000
    linear_sync = timed(lambda: [linear_find(granted, uid) for uid in uids[:linear_sample]]) * cards / linear_sample
    return {
        "cards": cards,
        "mandates": count,
        "first_tap_ms": round(first * 1000, 3),
        "unknown_first_tap_ms": round(unknown * 1000, 3),
        "tap_us": round(again * 1e6, 3),
        "taps_per_s": round(1 / again),
        "linear_tap_ms": round(linear * 1000, 3),
        "sync_first_ms": round(full_ms, 1),
        "sync_idle_ms": round(idle_ms, 3),
        "sync_one_mandate_ms": round(one_ms, 3),
        "linear_sync_ms": round(linear_sync * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--mandates", type=int, default=100)
    parser.add_argument("--taps", type=int, default=20, help="cards tapped for the first time, timed")
    parser.add_argument("--linear-sample", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(run(args.cards, args.mandates, args.taps, args.linear_sample)), file=sys.stdout)


if __name__ == "__main__":
    main()
