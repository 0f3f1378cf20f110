#!/usr/bin/env bash
# The checkout's Python virtual environment .venv (step 1 of tools/setup.sh): created if missing, the
# project installed (editable, with its dev extras; eth-brownie pins web3/pytest/hypothesis exactly, see
# pyproject.toml) whenever pyproject.toml is newer than .venv/.installed.
# A .venv that is a link (a copy of a checkout using that checkout's environment, as
# tests/project/test_install.py makes one) is never installed into: an editable install from here would
# point the other checkout's environment at this copy. Exit code 0 unless an install failed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [ -L .venv ]; then
  if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
    say ".venv is a link to $(readlink -f .venv): not installing into another checkout's environment (run tools/setup.sh in its checkout)"
  fi
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  say "installing Python packages (first time: about a minute)"
  if ! .venv/bin/pip install --quiet -e '.[dev]' > .venv/pip-install.log 2>&1; then
    grep -v 'is ignored: it is neither' .venv/pip-install.log >&2
    say "pip install failed (full log: .venv/pip-install.log)"; exit 1
  fi
  touch .venv/.installed
fi
