#!/usr/bin/env bash
# PostgreSQL server binaries for the tests that run the Core Client's state on PostgreSQL (the tests
# start and stop their own server: tools/pgserver.py; nothing is left running, no system service is
# used). Installs Debian's `postgresql` with apt-get when run as root and missing; otherwise says what
# to do. Exit code 0 when initdb and postgres are there afterwards, 1 if not.
set -euo pipefail
say() { printf '\033[1m[setup-postgres]\033[0m %s\n' "$*"; }
found() {
  if [ -n "${EVN_PG_BIN:-}" ]; then [ -x "$EVN_PG_BIN/postgres" ]; return; fi
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || command -v postgres >/dev/null
}

if found; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  say "installing Debian's postgresql (apt-get; about a minute)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # the package starts a system cluster on port 5432: the tests do not use it (they start their own)
fi
if found; then
  say "PostgreSQL installed: $(compgen -G '/usr/lib/postgresql/*/bin/postgres' | tail -1)"
  exit 0
fi
say "no PostgreSQL server binaries: the PostgreSQL tests fail until they are there."
say "install them as root: apt-get update && apt-get install -y postgresql  (or set EVN_PG_BIN to their folder)"
exit 1
