"""The event loop's own CPU per OCPP message: microseconds to parse, validate and dispatch a charge point's CALL.

    python -m benchmarks.ocpp_wire [--rounds 2000]

For each message the load fleet sends (:mod:`benchmarks.load`: BootNotification, StatusNotification,
Heartbeat, StartTransaction, MeterValues with energy and power, StopTransaction): ``parse_frame``,
``validate_call`` (schemas compiled to Python; ``jsonschema`` only names a violation), and for
comparison ``jsonschema``'s walk of the same schema (what ``validate_call`` cost before). Also a
refused frame (a StatusNotification with an unknown status): its error is named by ``jsonschema``.
Then the dispatch of each valid CALL to a handler that answers at once (as the bare central system
of the load benchmark does) up to the frame sent: :meth:`OcppLink._handle_call`, and for comparison
``ocpp``'s own ``ChargePoint._handle_call`` on the same link. Pure CPU, no network (the connection
drops what is sent); CPU time, medians of 5 repeats. The last line of output is the JSON result.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ocpp.messages import get_validator
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, ChargePointErrorCode, ChargePointStatus, Reason

from core_client.ocpp.adapter import OcppLink, load_schemas, on
from core_client.ocpp.wire import FrameError, parse_frame, validate_call
from simulator.state import as_sent, meter_value, utc_now

ID_TAG = "EVN0000000000001"
ACCEPTED = {"status": AuthorizationStatus.accepted}


class Dropped:
    """A connection that drops what is sent."""

    async def send(self, message: str) -> None:
        pass


class AnsweringLink(OcppLink):
    """A link whose handlers answer at once, as the load benchmark's bare central system does."""

    @on(Action.boot_notification)
    def on_boot(self, **_: Any):
        return call_result.BootNotification(current_time=utc_now(), interval=300, status="Accepted")

    @on(Action.status_notification)
    def on_status(self, **_: Any):
        return call_result.StatusNotification()

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any):
        return call_result.Heartbeat(current_time=utc_now())

    @on(Action.start_transaction)
    async def on_start(self, call_unique_id: str, **_: Any):
        return call_result.StartTransaction(transaction_id=17, id_tag_info=ACCEPTED)

    @on(Action.meter_values)
    async def on_meter_values(self, **_: Any):
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    async def on_stop(self, **_: Any):
        return call_result.StopTransaction(id_tag_info=ACCEPTED)


def fleet_frames() -> dict[str, str]:
    """One frame of each kind the load fleet's charge points send, as they send it."""
    now = utc_now()
    status = {"connectorId": 1, "errorCode": ChargePointErrorCode.no_error, "timestamp": now}
    payloads: dict[str, tuple[str, dict[str, Any]]] = {
        "BootNotification": ("BootNotification", {"chargePointVendor": "EVN", "chargePointModel": "Sim-2"}),
        "StatusNotification": ("StatusNotification", {**status, "status": ChargePointStatus.charging}),
        "Heartbeat": ("Heartbeat", {}),
        "StartTransaction": (
            "StartTransaction",
            {"connectorId": 1, "idTag": ID_TAG, "meterStart": 0, "timestamp": now},
        ),
        "MeterValues": (
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": 17,
                "meterValue": [as_sent(meter_value(512, "Sample.Periodic", 11000.0, now))],
            },
        ),
        "StopTransaction": (
            "StopTransaction",
            {"transactionId": 17, "meterStop": 1000, "timestamp": now, "reason": Reason.ev_disconnected},
        ),
        "refused StatusNotification": ("StatusNotification", {**status, "status": "Charging-ish"}),
    }
    return {
        kind: json.dumps([2, "0f3c2f9e-1", action, p], separators=(",", ":")) for kind, (action, p) in payloads.items()
    }


def microseconds(work: Callable[[], Any], rounds: int) -> float:
    """The median over 5 repeats of ``work``'s CPU time per run (this process's: other processes on a
    busy machine count less than in wall time), in microseconds."""
    times = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(rounds):
            work()
        times.append((time.process_time() - started) / rounds * 1e6)
    return round(statistics.median(times), 1)


def validated(frame: str) -> str | None:
    """Parse and validate ``frame``: None, or the error code it is answered with."""
    try:
        validate_call(parse_frame(frame))
    except FrameError as error:
        return error.code
    return None


def jsonschema_walk(frame: str) -> Callable[[], Any]:
    """What validate_call did for every CALL before: jsonschema's walk, its errors sorted."""
    message = parse_frame(frame)
    validator = get_validator(2, message.action, "1.6")
    return lambda: sorted(validator.iter_errors(message.payload), key=lambda e: len(e.path))


def validation(rounds: int) -> dict[str, Any]:
    load_schemas()
    result: dict[str, Any] = {}
    for kind, frame in fleet_frames().items():
        code = validated(frame)  # also compiles the schema, outside the timing
        assert (code is None) == (not kind.startswith("refused")), (kind, code)
        result[kind] = {
            "answer": code or "CALLRESULT",
            "parse_frame_us": microseconds(lambda f=frame: parse_frame(f), rounds),
            "parse_and_validate_us": microseconds(lambda f=frame: validated(f), rounds),
            "jsonschema_walk_us": microseconds(jsonschema_walk(frame), rounds),
        }
    return result


def dispatch(rounds: int) -> dict[str, Any]:
    """Per valid CALL: our link's _handle_call and ocpp's, each up to the answer sent."""
    link = AnsweringLink("BENCH-1", Dropped(), 30, logging.getLogger("benchmarks.ocpp_wire"))
    result: dict[str, Any] = {}
    for kind, frame in fleet_frames().items():
        if kind.startswith("refused"):
            continue
        message = parse_frame(frame)
        result[kind] = {
            "handle_call_us": microseconds(lambda m=message: complete(link._handle_call(m)), rounds),
            "ocpp_handle_call_us": microseconds(lambda m=message: complete(ChargePoint._handle_call(link, m)), rounds),
        }
    return result


def complete(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine that never waits (the handlers answer at once, the connection drops the answer)."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise RuntimeError("the dispatch waited for something")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000, help="runs per repeat (default 2000)")
    args = parser.parse_args(argv)
    result = {"validate_call": validation(args.rounds), "dispatch": dispatch(args.rounds)}
    for part, figures_by_kind in result.items():
        for kind, figures in figures_by_kind.items():
            print(f"{part:14s} {kind:27s} " + "  ".join(f"{k} {v}" for k, v in figures.items()), file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
