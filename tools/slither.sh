#!/usr/bin/env bash
# Static analysis of our contracts with slither (part of `make lint`). slither-analyzer pins versions
# Brownie's venv cannot share, so it lives in its own venv, .venv-lint (installed from PyPI on first
# use). OpenZeppelin's code is left out (--filter-paths node_modules); every remaining finding must be
# fixed or triaged in tools/slither-triage.toml (tools/slither_triage.py fails on any other).
set -euo pipefail
cd "$(dirname "$0")/.."
SLITHER_VERSION="0.11.6"
SOLC_VERSION="$(node -p "require('./package.json').dependencies.solc")"
SOLC_BIN="${SOLCX_BINARY_PATH:-$HOME/.solcx}/solc-v$SOLC_VERSION"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv-lint/bin/slither ] || ! .venv-lint/bin/slither --version | grep -qx "$SLITHER_VERSION"; then
  printf '\033[1m[lint]\033[0m installing slither-analyzer %s into .venv-lint\n' "$SLITHER_VERSION"
  [ -x .venv-lint/bin/python ] || "$PYTHON" -m venv .venv-lint
  if ! .venv-lint/bin/pip install --quiet "slither-analyzer==$SLITHER_VERSION" > .venv-lint/pip-install.log 2>&1; then
    grep -v 'is ignored: it is neither' .venv-lint/pip-install.log >&2
    printf '\033[1m[lint]\033[0m pip install failed (full log: .venv-lint/pip-install.log)\n'; exit 1
  fi
fi
mkdir -p build
rm -f build/slither.json
# slither exits non-zero whenever it reports findings: the triage below decides
.venv-lint/bin/slither contracts --solc "$SOLC_BIN" --solc-remaps "@openzeppelin/=node_modules/@openzeppelin/" \
  --solc-standard-json --filter-paths node_modules --json build/slither.json > build/slither.log 2>&1 || true
.venv/bin/python -m tools.slither_triage build/slither.json tools/slither-triage.toml build/slither.log
