#!/usr/bin/env bash
# ensure-chromium.sh: make sure /usr/bin/chromium exists for the browser layout test
# (dispatch.TestEmailHTMLFitsPhoneWidth). When it is missing and this runs as root with
# apt-get, Debian's chromium package is installed; otherwise nothing happens (the test then
# skips, or fails with CI=true).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing chromium" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
else
  echo "ensure-chromium: no /usr/bin/chromium and not root with apt-get; the browser layout test will skip (or fail with CI=true)" >&2
fi
