"""The world and the Python model that the escrow state machine (tools/harness/property_machine.py) checks the chain against:
every session the machine opened, each driver's lanes, the stations and their tariffs, and for every
call the custom error (with its arguments) the contract must revert with, or None."""

from __future__ import annotations

from dataclasses import dataclass, field

from ev_network.contracts import SessionState
from ev_network.pricing import Tariff
from ev_network.session_ids import LANES, make_session_id, seq_of
from tools.harness.chain import TARIFF, TIMED_TARIFF, TOKEN, Net
from tools.harness.contracts import BatchReader

OPEN = (SessionState.REQUESTED, SessionState.ACTIVE)
FUNDS = 1_000 * TOKEN
UNKNOWN_KINDS = ("next_seq", "unused_lane", "stray_bits", "seq_zero", "nobody")

Expected = tuple[str, tuple] | None  # (custom error name, its arguments), None: the call succeeds


@dataclass
class ModelSession:
    """A session as the model expects getSession to read it (``since``: when it entered its state)."""

    driver: int
    lane: int
    seq: int
    station: int
    deposit: int
    tariff: Tariff
    tariff_id: int
    state: SessionState = SessionState.REQUESTED
    since: int = 0
    meter_start: int = 0


@dataclass
class ModelStation:
    station_id: int
    operator: int
    tariff: Tariff
    tariff_id: int
    active: bool = True


@dataclass
class World:
    """What the test function set up once: accounts, stations and bindings (each machine snapshots
    on top of it)."""

    net: Net
    drivers: list
    operators: list
    payouts: list
    stations: list[ModelStation] = field(default_factory=list)

    def __post_init__(self) -> None:
        net = self.net
        self.driver_escrows = [net.escrow(d) for d in self.drivers]
        self.operator_escrows = [net.escrow(o) for o in self.operators]
        self.view = net.escrow()
        self.reader = BatchReader(net.w3, net.deployment.token, net.deployment.escrow)


class Model:
    """Sessions by id, and per driver the latest session id of each lane it used."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.sessions: dict[int, ModelSession] = {}
        self.lanes: list[dict[int, int]] = [{} for _ in world.drivers]
        self.stations = [
            ModelStation(s.station_id, s.operator, s.tariff, s.tariff_id, s.active) for s in world.stations
        ]

    # ---------------------------------------------------------------- lanes
    def free_lane(self, driver: int) -> int:
        """The lane the driver's next open takes: the first without a Requested or Active session."""
        lanes = self.lanes[driver]
        for lane in range(LANES):
            if lane not in lanes or self.sessions[lanes[lane]].state not in OPEN:
                return lane
        raise AssertionError("the machine never opens 256 sessions of one driver")

    def open(self, driver: int, station: int, deposit: int, ts: int) -> int:
        """Record a successful open; returns the id the escrow must have given it. The session the lane
        held before now reads Closed."""
        lane = self.free_lane(driver)
        previous = self.lanes[driver].get(lane)
        if previous is not None:
            self.sessions[previous].state = SessionState.CLOSED
        seq = seq_of(previous) + 1 if previous is not None else 1
        sid = make_session_id(self.world.drivers[driver].address, lane, seq)
        s = self.stations[station]
        self.sessions[sid] = ModelSession(driver, lane, seq, station, deposit, s.tariff, s.tariff_id, since=ts)
        self.lanes[driver][lane] = sid
        return sid

    def expected_view(self, sid: int) -> tuple:
        """getSession(sid) as BatchReader.sessions decodes it."""
        m = self.sessions[sid]
        head = (self.world.drivers[m.driver].address, m.lane, m.seq, m.state)
        if m.state == SessionState.CLOSED:
            return (*head, 0, 0, 0, 0, 0)
        station_id = self.stations[m.station].station_id
        return (*head, m.deposit, station_id, m.tariff_id, m.since, m.meter_start)

    def unknown_id(self, driver: int, kind: str, salt: int) -> int:
        """An id that names no session (getSession reads None), shaped by ``kind``."""
        address, lanes = self.world.drivers[driver].address, self.lanes[driver]
        if kind == "next_seq":  # the sequence number a lane has not reached yet
            lane = salt % (len(lanes) + 1)
            return make_session_id(address, lane, seq_of(lanes[lane]) + 1 if lane in lanes else 1)
        if kind == "unused_lane":
            return make_session_id(address, len(lanes) + salt % (LANES - len(lanes)), 1 + salt % 3)
        if kind == "stray_bits":  # a real id with a bit set between the lane and the driver
            known = sorted(lanes.values()) or [make_session_id(address, 0, 1)]
            return known[salt % len(known)] | 1 << (24 + salt % 72)
        if kind == "seq_zero":
            return int(address, 16) << 96 | (salt % LANES) << 16
        return make_session_id(self.world.payouts[salt % 2].address, salt % LANES, 1)  # nobody's lane

    # ------------------------------------------------------ expected errors
    def any_in(self, state: SessionState) -> bool:
        return any(m.state == state for m in self.sessions.values())

    def open_error(self, station: int, connector: int, deposit: int) -> Expected:
        s = self.stations[station]
        if deposit == 0:
            return "ZeroDeposit", ()
        if not s.active:
            return "StationInactive", (s.station_id,)
        if connector not in (1, 2):
            return "InvalidConnector", (s.station_id, connector)
        return None

    def operator_error(self, sid: int, operator: int, wanted: SessionState) -> Expected:
        m = self.sessions[sid]
        if m.state != wanted:
            return "InvalidState", (sid, m.state)
        station = self.stations[m.station]
        if station.operator != operator:
            return "NotStationOperator", (station.station_id, self.world.operators[operator].address)
        return None

    def settle_error(self, sid: int, operator: int, meter_stop: int) -> Expected:
        m = self.sessions[sid]
        error = self.operator_error(sid, operator, SessionState.ACTIVE)
        if error is None and meter_stop < m.meter_start:
            error = "MeterBelowStart", (sid, m.meter_start, meter_stop)
        return error

    def driver_error(self, sid: int, driver: int, wanted: SessionState, allowed_at: int, now: int) -> Expected:
        """``now``: the timestamp the call runs at (gas estimate and mined block alike)."""
        m = self.sessions[sid]
        if m.state != wanted:
            return "InvalidState", (sid, m.state)
        if m.driver != driver:
            return "NotDriver", (sid, self.world.drivers[driver].address)
        return ("TooEarly", (sid, allowed_at)) if now < allowed_at else None


def build_world(net: Net) -> World:
    """Three funded drivers without sessions, two operators with two stations each (one flat, one
    timed tariff)."""
    world = World(
        net, drivers=net.drivers[3:6], operators=[net.operator, net.operator2], payouts=[net.payout, net.payout2]
    )
    for i, (operator, tariff) in enumerate([(0, TARIFF), (0, TIMED_TARIFF), (1, TIMED_TARIFF), (1, TARIFF)]):
        station_id = net.add_station(f"CP-PROP-{i}", connectors=2, tariff=tariff, operator=world.operators[operator])
        tariff_id = net.escrow().get_station(station_id).tariff_id
        world.stations.append(ModelStation(station_id, operator, tariff, tariff_id))
    first_ids = [make_session_id(d.address, 0, 1) for d in world.drivers]
    assert all(s[3] == SessionState.NONE for s in world.reader.sessions(first_ids).values()), "drivers not fresh"
    for driver in world.drivers:
        net.fund(driver, FUNDS)
    return world
