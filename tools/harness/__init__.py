"""The test harness, shared by tests/ and benchmarks/ (benchmarks never import from tests/, and no test
imports another test module): the test network (chain), the contract helpers (contracts), a real Core
Client, a raw OCPP client and session records for the store (core), the driver's wallet (wallet), proxy
mode's relay and CSMS (upstream_relay), the OCPP peers in tests/interop (interop), the OCPI peers in
tests/interop as processes, our OCPI sides on real ports and OCPI objects (ocpi/), the escrow's model for
property tests (property_model, property_machine), the browser stack (browser), and small helpers of the
records, simulator and web tests. Dev-only, like the rest of tools/."""
