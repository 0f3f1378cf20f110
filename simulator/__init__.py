"""Simulated OCPP 1.6J charge points for the EV Network's tests, demo and load benchmarks."""

from simulator.charge_point import Behaviour, BootRejected, SimChargePoint, StopRecord
from simulator.fleet import close_all, fleet_ids, run_fleet

__all__ = ["Behaviour", "BootRejected", "SimChargePoint", "StopRecord", "close_all", "fleet_ids", "run_fleet"]
