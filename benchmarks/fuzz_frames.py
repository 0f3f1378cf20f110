"""Seeded hostile OCPP-J frames for the fuzz run (:mod:`benchmarks.fuzz`).

Payloads are generated from the OCPP 1.6 JSON schemas that the ``ocpp`` package ships (the actions
a charge point sends), then some are mutated: a field replaced by a value of the wrong type, a huge
or negative number, a long string, deep nesting, null, or an unknown field. Besides those, frames of
hostile shape: not JSON, not an array, wrong message types and ids, unknown actions, actions only a
central system may send, binary frames, deep nesting, unsolicited CALLRESULTs and CALLERRORs.

Some shapes exposed defects of issue 9, now fixed; they stay in the generator, under the kinds
named in :data:`DEFECT_SHAPES`, as regression shapes (the run reports how many of each it sent).
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ocpp

SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"
CP_ACTIONS = (
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
)
DEFECT_SHAPES = {
    "meter_huge_exponent": "issue 9 #1 (fixed): MeterValues value '1e999999' freezes the daemon (Decimal to int first)",
    "unsolicited_callresult": "issue 9 #2 (fixed): unsolicited CALLRESULTs pile up in ocpp's response queue, never freed",
    "int_over_4300_digits": "issue 9 #7 (fixed): an integer over 4,300 digits raises ValueError in parse_frame (close 1011)",
    "int_2_63": "issue 9 #7 (fixed): a number >= 2^63 hits SQLite OverflowError (answered InternalError)",
    "meter_absurd_reading": "issue 17 #1 (fixed): a MeterValues reading beyond what a connector delivers was billed",
    "signed_huge_number": "issue 17 #3 (fixed): RV 1E+999999 / a 5,000-digit page in a signed record froze the daemon",
    "signed_deep_nesting": "issue 17 #3 (fixed): JSON nested 100,000 deep in a signed value answered InternalError",
}
# (kind, weight): schema-driven frames most of the time, each hostile shape now and then
KINDS = (
    ("valid", 30),
    ("mutated", 40),
    ("bad_frame", 12),
    ("deep", 2),
    ("binary", 3),
    ("unsolicited_callerror", 3),
    ("long_string", 2),
    ("meter_huge_exponent", 0.05),
    ("unsolicited_callresult", 0.3),
    ("int_over_4300_digits", 0.1),
    ("int_2_63", 0.1),
    ("meter_absurd_reading", 0.5),
    ("signed_huge_number", 0.3),
    ("signed_deep_nesting", 0.2),
)
SAFE_INT = 2**63 - 1  # general mutations stay below the SQLite-overflow shape, which has its own kind


@dataclass(frozen=True)
class Frame:
    kind: str
    data: str | bytes
    call_id: str | None = None  # a CALL with a readable id: the central system must answer it

    def excerpt(self, size: int = 80) -> str:
        text = self.data if isinstance(self.data, str) else repr(self.data)
        return text[:size] + (f"... ({len(text)} chars)" if len(text) > size else "")


def load_schemas() -> dict[str, dict]:
    return {action: json.loads((SCHEMAS / f"{action}.json").read_text()) for action in CP_ACTIONS}


class FrameGenerator:
    """``frames(n)``: ``n`` frames from ``seed`` (the same seed gives the same frames)."""

    def __init__(self, seed: int, skip: frozenset[str] = frozenset()) -> None:
        self.rng = random.Random(seed)
        self.schemas = load_schemas()
        self.kinds = [(k, w) for k, w in KINDS if k not in skip]
        self.count = 0

    def frames(self, n: int) -> Iterator[Frame]:
        names, weights = zip(*self.kinds, strict=True)
        for _ in range(n):
            yield self.make(self.rng.choices(names, weights)[0])

    def make(self, kind: str) -> Frame:
        self.count += 1
        return getattr(self, f"_{kind}")(f"z{self.count}")

    # schema-driven

    def _valid(self, uid: str) -> Frame:
        action = self.rng.choice(CP_ACTIONS)
        return call(uid, action, self.instance(self.schemas[action]), "valid")

    def _mutated(self, uid: str) -> Frame:
        action = self.rng.choice(CP_ACTIONS)
        payload = self.instance(self.schemas[action])
        self.mutate(payload)
        return call(uid, action, payload, "mutated")

    def instance(self, schema: dict, depth: int = 0) -> Any:
        """A value valid for ``schema`` (optional fields included at random)."""
        r = self.rng
        if "enum" in schema:
            return r.choice(schema["enum"])
        kind = schema.get("type", "object")
        if kind == "object":
            props = schema.get("properties", {})
            required = set(schema.get("required", []))
            return {k: self.instance(v, depth + 1) for k, v in props.items() if k in required or r.random() < 0.5}
        if kind == "array":
            return [
                self.instance(schema.get("items", {}), depth + 1) for _ in range(r.randint(1, 3 if depth < 3 else 1))
            ]
        if kind == "string":
            if schema.get("format") == "date-time":
                return f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:00:00Z"
            return "".join(r.choices(string.ascii_letters + string.digits, k=r.randint(1, schema.get("maxLength", 20))))
        if kind == "integer":
            return r.choice([0, 1, 2, r.randint(0, 10**6)])
        if kind == "number":
            return round(r.uniform(0, 10**4), 2)
        if kind == "boolean":
            return r.random() < 0.5
        return None

    def mutate(self, payload: dict) -> None:
        """Replace (or add) one field somewhere in ``payload`` by a hostile value."""
        target = payload
        while True:  # walk down a random path of objects and arrays
            children = [(k, v) for k, v in (target.items() if isinstance(target, dict) else enumerate(target))]
            nested = [(k, v) for k, v in children if isinstance(v, dict | list) and v]
            if not nested or self.rng.random() < 0.4:
                break
            target = self.rng.choice(nested)[1]
        if isinstance(target, list):
            target[self.rng.randrange(len(target))] = self.hostile()
            return
        keys = [*list(target), "unknownField"]
        target[self.rng.choice(keys)] = self.hostile()

    def hostile(self) -> Any:
        r = self.rng
        return r.choice(
            [
                lambda: SAFE_INT,
                lambda: -SAFE_INT - 1,
                lambda: -r.randint(1, 10**6),
                lambda: r.choice([1.5, -0.0, 1e308, -1e308, 1.0]),
                lambda: "9" * r.randint(20, 400),
                lambda: "1e" + str(r.randint(2, 99)),
                lambda: "".join(r.choices(string.printable, k=r.randint(100, 5000))),
                lambda: "\u202e\u0000\n\r" * r.randint(1, 50),
                lambda: None,
                lambda: r.random() < 0.5,
                lambda: [],
                lambda: {},
                lambda: nest(r.randint(5, 200), r),
                lambda: [self.instance({"type": "integer"})] * r.randint(100, 2000),
            ]
        )()

    # hostile shapes

    def _bad_frame(self, uid: str) -> Frame:
        shapes = [
            ("this is not json {", None),
            ('{"not": "an array"}', None),
            ("[]", None),
            ("[2]", None),
            (f'[2, "{uid}"]', uid),
            (f'[2, "{uid}", "Heartbeat"]', uid),
            (f'[2, "{uid}", "Heartbeat", []]', uid),
            (f'[2, "{uid}", "Heartbeat", {{}}, "extra"]', uid),
            ('[2, 12345, "Heartbeat", {}]', None),
            (f'[2, "{"x" * 37}", "Heartbeat", {{}}]', None),
            (f'[2, "{uid}", 7, {{}}]', uid),
            (f'[9, "{uid}", "Heartbeat", {{}}]', uid),
            (f'[2, "{uid}", "NoSuchAction", {{}}]', uid),
            (f'[2, "{uid}", "RemoteStartTransaction", {{"idTag": "x"}}]', uid),
            (f'[2, "{uid}", "Reset", {{"type": "Hard"}}]', uid),
            ("null", None),
            ('"just a string"', None),
            ("12345", None),
            ("[2, NaN, Infinity, -Infinity]", None),
        ]
        data, call_id = self.rng.choice(shapes)
        return Frame("bad_frame", data, call_id)

    def _deep(self, uid: str) -> Frame:
        depth = self.rng.choice([100, 1000, 10_000, 100_000])
        return Frame("deep", f'[2, "{uid}", "Heartbeat", {{"a": {"[" * depth}{"]" * depth}}}]')

    def _binary(self, uid: str) -> Frame:
        text = json.dumps([2, uid, "Heartbeat", {}]).encode()
        return Frame("binary", self.rng.choice([text, self.rng.randbytes(self.rng.randint(1, 2000)), b"\xff\xfe\x00"]))

    def _unsolicited_callerror(self, uid: str) -> Frame:
        return Frame("unsolicited_callerror", json.dumps([4, uid, "InternalError", "no such call", {}]))

    def _long_string(self, uid: str) -> Frame:
        tag = "x" * self.rng.choice([21, 1000, 100_000, 500_000])
        return call(uid, "Authorize", {"idTag": tag}, "long_string")

    # the shapes of known defects (issue 9)

    def _meter_huge_exponent(self, uid: str) -> Frame:
        value = f"1e{self.rng.randint(100_000, 999_999)}"
        payload = {
            "connectorId": 1,
            "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": value}]}],
        }
        return call(uid, "MeterValues", payload, "meter_huge_exponent")

    def _unsolicited_callresult(self, uid: str) -> Frame:
        filler = "y" * self.rng.choice([100, 10_000, 200_000])
        return Frame("unsolicited_callresult", json.dumps([3, uid, {"stale": filler}]))

    def _int_over_4300_digits(self, uid: str) -> Frame:
        digits = "9" * self.rng.randint(4301, 20_000)
        return Frame("int_over_4300_digits", f'[2, "{uid}", "Heartbeat", {{"n": {digits}}}]', uid)

    def _int_2_63(self, uid: str) -> Frame:
        big = 2**63 + self.rng.randint(0, 10**6)
        payload = self.rng.choice(
            [
                {"connectorId": 1, "idTag": "EVN1", "meterStart": big, "timestamp": "2026-01-01T00:00:00Z"},
                {"transactionId": big, "meterStop": 1, "timestamp": "2026-01-01T00:00:00Z"},
            ]
        )
        return call(uid, "StartTransaction" if "meterStart" in payload else "StopTransaction", payload, "int_2_63")

    # the shapes of issue 17

    def _meter_absurd_reading(self, uid: str) -> Frame:
        value = self.rng.choice(["120000", "1000000000000", "1099511627775", "999999999.999"])
        sample = {"value": value, "unit": "kWh" if "." in value else "Wh"}
        payload = {
            "connectorId": 1,
            "transactionId": self.rng.randint(1, 5),
            "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [sample]}],
        }
        return call(uid, "MeterValues", payload, "meter_absurd_reading")

    def _signed_huge_number(self, uid: str) -> Frame:
        rv, page = self.rng.choice([("1E+999999", "T8"), ("1" + "0" * 5_000, "T8"), ("20", "T" + "9" * 5_000)])
        record = (
            f'OCMF|{{"FV":"1.0","PG":"{page}","MS":"FUZZ","ID":"EV0000","RD":[{{"TM":"2026-01-01T00:00:00,000+0000 S",'
            f'"TX":"E","RV":{rv},"RU":"Wh","ST":"G"}}]}}|{{"SD":"3045"}}'
        )
        return self._signed_stop(uid, record, "signed_huge_number")

    def _signed_deep_nesting(self, uid: str) -> Frame:
        depth = self.rng.choice([5_000, 50_000, 100_000])
        return self._signed_stop(uid, '{"signedMeterData":' + "[" * depth + "]" * depth + "}", "signed_deep_nesting")

    def _signed_stop(self, uid: str, value: str, kind: str) -> Frame:
        sample = {"value": value, "context": "Transaction.End", "format": "SignedData"}
        reading = {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [sample]}
        payload = {"transactionId": self.rng.randint(1, 5), "meterStop": 1, "timestamp": "2026-01-01T00:00:00Z"}
        return call(uid, "StopTransaction", {**payload, "transactionData": [reading]}, kind)


def call(uid: str, action: str, payload: dict, kind: str) -> Frame:
    return Frame(kind, json.dumps([2, uid, action, payload]), uid)


def nest(depth: int, rng: random.Random) -> Any:
    value: Any = rng.choice([0, "x", None])
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return value
