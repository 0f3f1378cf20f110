"""Charging sessions: the state machine, the pure decisions, the service that applies them, jobs, readings."""
