#!/usr/bin/env bash
# with-postgres.sh CMD...: run CMD with NOTIFICATIONS_TEST_DATABASE_URL pointing at a
# PostgreSQL server. When the variable is already set it is used as it is; otherwise a
# throw-away cluster is created from the PostgreSQL binaries on this machine (initdb into a
# temp dir, loopback only, as an unprivileged user when run as root) and removed afterwards.
set -euo pipefail

if [ -n "${NOTIFICATIONS_TEST_DATABASE_URL:-}" ]; then
  exec "$@"
fi

find_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null 2>&1 && dirname "$(readlink -f "$(command -v initdb)")"
}

bindir=$(find_bindir || true)
if [ -z "$bindir" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "with-postgres: installing PostgreSQL server binaries" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bindir=$(find_bindir || true)
  fi
fi
if [ -z "$bindir" ]; then
  echo "with-postgres: no PostgreSQL server binaries (initdb) found; install postgresql or set NOTIFICATIONS_TEST_DATABASE_URL" >&2
  exit 1
fi

dir=$(mktemp -d /tmp/notifications-pg.XXXXXX)
runas=()
if [ "$(id -u)" = 0 ]; then
  user=notifications-test
  id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  chown "$user" "$dir"
  runas=(runuser -u "$user" --)
fi

# A free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)

cleanup() {
  "${runas[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"${runas[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
# NOTIFICATIONS_PG_DURABLE=1 keeps PostgreSQL's durable defaults (the benchmarks switch
# between durable and fast settings with ALTER SYSTEM, which the command line would override).
fast="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "${NOTIFICATIONS_PG_DURABLE:-}" = 1 ] && fast=""
"${runas[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
  -o "-h 127.0.0.1 -p $port -k $dir $fast -c max_connections=300 ${PG_EXTRA_OPTS:-}" >/dev/null ||
  { cat "$dir/server.log" >&2; exit 1; }

export NOTIFICATIONS_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
export NOTIFICATIONS_TEST_PG_BINDIR="$bindir" NOTIFICATIONS_TEST_PG_DATADIR="$dir/data"
echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
set +e
"$@"
rc=$?
set -e
exit $rc
