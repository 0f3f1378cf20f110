#!/usr/bin/env bash
# Installs whatever this checkout is missing, and nothing it already has:
#   .venv (Python packages), node_modules (Anvil, solc-js, OpenZeppelin), the offline solc stand-in,
#   the Brownie network `evnet-anvil`, the compiled contracts, the browser tests' Chromium and the
#   PostgreSQL server binaries (the tests start their own server).
# Safe to run again; `make test`, `make demo` and the benchmarks call it first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SOLC_VERSION="$(node -p "require('./package.json').dependencies.solc")"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. Python virtual environment .venv (never installed into when it is a link to another checkout's)
tools/setup_venv.sh

# 2. npm tools: Anvil, solc-js, OpenZeppelin
if [ ! -d node_modules/solc ] || [ ! -x node_modules/.bin/anvil ] || [ package.json -nt node_modules/.installed ]; then
  say "installing npm packages (Anvil, solc-js, OpenZeppelin)"
  npm install --no-fund --no-audit --loglevel=error
  touch node_modules/.installed
fi

# 3. solc stand-in for py-solc-x and Brownie (a native solc already installed there is kept).
#    It runs tools/solc.js of the project it is called from (Brownie runs from the project root),
#    else that of this checkout; the path is written shell-quoted (it may hold spaces, quotes, $).
SOLCX_DIR="${SOLCX_BINARY_PATH:-$HOME/.solcx}"
SOLC_BIN="$SOLCX_DIR/solc-v$SOLC_VERSION"
if [ ! -e "$SOLC_BIN" ] || grep -q "EV Network solc stand-in" "$SOLC_BIN" 2>/dev/null; then
  mkdir -p "$SOLCX_DIR"
  {
    printf '#!/usr/bin/env bash\n# EV Network solc stand-in: solc-js (npm) through tools/solc.js\n'
    printf 'if [ -f tools/solc.js ] && [ -d node_modules/solc ]; then exec node tools/solc.js "$@"; fi\n'
    printf 'exec node %q "$@"\n' "$ROOT/tools/solc.js"
  } > "$SOLC_BIN.tmp"
  chmod +x "$SOLC_BIN.tmp" && mv "$SOLC_BIN.tmp" "$SOLC_BIN"
fi

# 4. Brownie network evnet-anvil (host taken from $EVN_RPC_URL)
if ! grep -q "id: evnet-anvil" "$HOME/.brownie/network-config.yaml" 2>/dev/null || [ networks.yaml -nt "$HOME/.brownie/.evnet-imported" ]; then
  say "registering Brownie network evnet-anvil"
  .venv/bin/brownie networks delete evnet-anvil >/dev/null 2>&1 || true
  .venv/bin/brownie networks import networks.yaml >/dev/null
  touch "$HOME/.brownie/.evnet-imported"
fi

# 5. Contracts (build/contracts; the ABIs shipped in ev_network/abi are refreshed by `make abi`)
#    Compiled afresh whenever a contract was added, changed, renamed or removed (a removed contract's
#    stale build file would otherwise stay and break the ABI and docs checks).
SOURCES_SUM="$(find contracts -name '*.sol' -print0 | sort -z | xargs -0 sha1sum | sha1sum | cut -d' ' -f1)"
if [ "$(cat build/.compiled 2>/dev/null)" != "$SOURCES_SUM" ]; then
  say "compiling contracts"
  rm -rf build/contracts build/interfaces
  .venv/bin/brownie compile >/dev/null
  printf '%s\n' "$SOURCES_SUM" > build/.compiled
fi

# 6. Headless Chromium for tests/browser (Debian's package, installed with apt-get when run as root;
#    otherwise it says what to do, and everything else still works: only the browser tests need it)
tools/setup_browser.sh || true

# 7. PostgreSQL server binaries (Debian's package, with apt-get when run as root; tools/pgserver.py starts
#    a throwaway server for the tests: none is left running, the system's service is not used)
tools/setup_postgres.sh || true
