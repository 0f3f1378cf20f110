#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/browser/) and scripts/screenshots.py.
# Playwright for Python drives the system browser (/usr/bin/chromium): its own browser download is not
# available on these machines. Installs Debian's `chromium` with apt-get when run as root and missing;
# otherwise says what to do. Exit code 0 when the browser is there afterwards, 1 if not.
set -euo pipefail
BROWSER=${EVN_CHROMIUM:-/usr/bin/chromium}
say() { printf '\033[1m[setup-browser]\033[0m %s\n' "$*"; }

if [ -x "$BROWSER" ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  say "installing Debian's chromium (apt-get; about a minute)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
if [ -x "$BROWSER" ]; then
  say "chromium installed: $("$BROWSER" --version 2>/dev/null || echo "$BROWSER")"
  exit 0
fi
say "no Chromium at $BROWSER: the browser tests (tests/browser) fail until it is there."
say "install it as root: apt-get update && apt-get install -y chromium  (or set EVN_CHROMIUM to a Chromium binary)"
exit 1
