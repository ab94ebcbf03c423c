#!/usr/bin/env bash
# ensure-chromium.sh: make sure /usr/bin/chromium exists for the browser layout test
# (dispatch.TestEmailHTMLFitsPhoneWidth). When it is missing and this runs as root with
# apt-get, Debian's chromium package is installed (`make test` runs this before
# scripts/with-postgres.sh); otherwise nothing happens (the test then
# skips, or fails with CI=true).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing chromium" >&2
  # Wait for the dpkg lock: a fresh Debian machine often holds it at boot (apt-daily,
  # unattended-upgrades).
  apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"; }
  apt_get update -qq >&2
  apt_get install -y -qq chromium >&2
else
  echo "ensure-chromium: no /usr/bin/chromium and not root with apt-get; the browser layout test will skip (or fail with CI=true)" >&2
fi
