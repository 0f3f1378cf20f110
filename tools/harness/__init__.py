"""The test harness, shared by tests/ and benchmarks/ (benchmarks never import from tests/): the test
network (chain), the contract helpers (contracts), a real Core Client and a raw OCPP client (core), the
driver's wallet (wallet), proxy mode's relay and CSMS (upstream_relay), the OCPP peers in tests/interop
(interop), the escrow's model for property tests (property_model, property_machine), the browser stack
(browser), and small helpers of the records, simulator and web tests. Dev-only, like the rest of tools/."""
