# EV Network. `make demo` runs the whole journey; `make test` runs the tests. Both set up what is missing.
SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)
export EVN_RPC_URL ?= http://127.0.0.1:8545
PY := .venv/bin/python

.PHONY: setup test demo devnet bench-gas bench-anchor bench-load lint abi docs deploy clean

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

# Gas per record of the transaction record's anchors at 1, 100 and 10,000 records per anchor (JSON last line).
bench-anchor: setup
	$(PY) -m benchmarks.anchor_gas $(BENCH_ARGS)

bench-load: setup
	$(PY) -m benchmarks.load $(BENCH_ARGS)

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# Refresh the ABIs shipped with the Python package after changing a contract (tests fail until you do).
abi: setup
	$(PY) -m ev_network.abi_export build/contracts ev_network/abi

# Regenerate docs/contracts.md from the contracts' NatSpec (tests fail until you do).
docs: setup
	$(PY) -m tools.contract_docs build/contracts docs/contracts.md

# Deploy to the Anvil at $(EVN_RPC_URL) with Brownie (writes deployments/local.json).
deploy: setup
	rm -rf build/deployments  # Brownie's records of earlier local chains
	.venv/bin/brownie run scripts/deploy.py --network evnet-anvil

clean:
	rm -rf build .demo .pytest_cache
