# EV Network. `make demo` runs the whole journey; `make test` runs the tests. Both set up what is missing.
# Works from any checkout path, also one with dots and spaces ("/home/jane.doe/ev network"): recipes
# run from the checkout (make's own directory) with relative paths, and the Brownie scripts go through
# tools/brownie_run.py (`brownie run` cannot import scripts from a path with a dot in a folder name).
SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)
export EVN_RPC_URL ?= http://127.0.0.1:8545
PY := .venv/bin/python
CHAOS_ARGS ?=
FUZZ_ARGS ?=

.PHONY: setup test demo devnet bench-gas bench-cards bench-card-lookup bench-anchor bench-load bench-chaos bench-ocpi fuzz lint abi docs deploy clean

setup:
	@tools/setup.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(PY) -m scripts.demo $(DEMO_ARGS)

# A local network to use by hand: Anvil on :8545, Core Client, simulated charge points (Ctrl-C stops).
devnet: setup
	$(PY) -m scripts.devnet $(DEVNET_ARGS)

bench-gas: setup
	$(PY) -m benchmarks.gas

# Start latency of an RFID card: Authorize/StartTransaction -> answer, -> active on chain (JSON last line).
bench-cards: setup
	$(PY) -m benchmarks.card_start $(BENCH_ARGS)

# Card lookups at 10,000 cards: a tap's lookup, a local-list sync's re-check, vs the linear scan (JSON last line).
bench-card-lookup: setup
	$(PY) -m benchmarks.card_lookup $(BENCH_ARGS)

# Gas per record of the transaction record's anchors at 1, 100 and 10,000 records per anchor (JSON last line).
bench-anchor: setup
	$(PY) -m benchmarks.anchor_gas $(BENCH_ARGS)

# N charge points on the Core Client vs a bare `ocpp` system (JSON last line); BENCH_ARGS="--instances 2": several on PostgreSQL.
bench-load: setup
	$(PY) -m benchmarks.load $(BENCH_ARGS)

# 100 concurrent wallet sessions through the stand-in OCPI CPO: start and settle latency; prints JSON (BENCH_ARGS="--sessions N").
bench-ocpi: setup
	$(PY) -m benchmarks.ocpi $(BENCH_ARGS)

# 200 paid sessions, the Core Client SIGKILLed 10 times and a chain outage; prints JSON (CHAOS_ARGS="--help").
bench-chaos: setup
	$(PY) -m benchmarks.chaos $(CHAOS_ARGS)

# 10,000 hostile OCPP frames against a real Core Client, then 30 s out of file descriptors; prints JSON (FUZZ_ARGS="--help").
fuzz: setup
	$(PY) -m benchmarks.fuzz $(FUZZ_ARGS)

# ruff, and slither on our contracts (in its own .venv-lint: its pins cannot share Brownie's venv).
lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
	@tools/slither.sh

# Refresh the ABIs shipped with the Python package after changing a contract (tests fail until you do).
abi: setup
	$(PY) -m ev_network.abi_export build/contracts ev_network/abi

# Regenerate docs/contracts.md from the contracts' NatSpec (tests fail until you do).
docs: setup
	$(PY) -m tools.contract_docs build/contracts docs/contracts.md

# Deploy to the Anvil at $(EVN_RPC_URL) with Brownie (writes deployments/local.json).
deploy: setup
	$(PY) -m tools.brownie_run scripts/deploy.py --network evnet-anvil

clean:
	rm -rf build .demo .pytest_cache
