#!/usr/bin/env bash
# with-postgres.sh CMD...: run CMD with NOTIFICATIONS_TEST_DATABASE_URL pointing at a
# PostgreSQL server and NOTIFICATIONS_TEST_PGBOUNCER_URL at a PgBouncer (transaction mode)
# in front of it. When the database variable is already set it is used as it is (set the
# PgBouncer one too for the pooler tests); otherwise a throw-away cluster is created from the
# PostgreSQL binaries on this machine (initdb into a temp dir, loopback only, as an
# unprivileged user when run as root), PgBouncer is started in front of it, and both are
# removed afterwards. Missing packages (postgresql, pgbouncer) are installed with apt when
# run as root. (Chromium, which only `make test` needs, is scripts/ensure-chromium.sh's.)
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

apt_updated=
apt_install() { # apt_install PACKAGE: install it when run as root with apt; false otherwise
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  echo "with-postgres: installing $1" >&2
  if [ -z "$apt_updated" ]; then apt_get update -qq >&2; apt_updated=1; fi
  apt_get install -y -qq "$1" >&2
}
# apt-get waiting for the dpkg lock: a fresh Debian machine often holds it at boot
# (apt-daily, unattended-upgrades).
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"; }

find_pgbouncer() {
  command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; }
}

bindir=$(find_bindir || true)
if [ -z "$bindir" ] && apt_install postgresql; then
  bindir=$(find_bindir || true)
fi
pgbouncer=$(find_pgbouncer || true)
if [ -z "$pgbouncer" ] && apt_install pgbouncer; then
  pgbouncer=$(find_pgbouncer || true)
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

# free_port: a free loopback port, from the kernel through python3 when there is one;
# otherwise (minimal Debian has no python3) the first port from a random start in
# 20000-59999 that nothing accepts connections on (bash's /dev/tcp).
free_port() {
  if command -v python3 >/dev/null 2>&1 &&
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null; then
    return
  fi
  local p i
  p=$((20000 + RANDOM % 40000))
  for i in $(seq 1000); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    p=$((20000 + (p - 20000 + 1) % 40000))
  done
  echo "with-postgres: no free loopback port found" >&2
  return 1
}
port=$(free_port)

cleanup() {
  if [ -f "$dir/pgbouncer.pid" ]; then kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true; fi
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

# PgBouncer in transaction mode in front of it, as production poolers run. The cluster
# trusts loopback, so PgBouncer does too (auth_type trust still needs the user listed).
if [ -n "$pgbouncer" ]; then
  bport=$(free_port)
  printf '"postgres" ""\n' >"$dir/pgbouncer-users.txt"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $dir/pgbouncer-users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
ignore_startup_parameters = extra_float_digits
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
EOF
  if [ ${#runas[@]} -gt 0 ]; then chown "$user" "$dir"/pgbouncer*; fi
  "${runas[@]}" "$pgbouncer" -d "$dir/pgbouncer.ini" >"$dir/pgbouncer.out" 2>&1 ||
    { cat "$dir/pgbouncer.out" "$dir/pgbouncer.log" >&2 2>/dev/null; exit 1; }
  ready=
  for _ in $(seq 100); do
    if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$bport" -U postgres -d postgres; then ready=1; break; fi
    sleep 0.1
  done
  if [ -z "$ready" ]; then
    echo "with-postgres: PgBouncer on 127.0.0.1:$bport is not ready after 10 s; its log:" >&2
    cat "$dir/pgbouncer.out" "$dir/pgbouncer.log" >&2 2>/dev/null || true
    exit 1
  fi
  export NOTIFICATIONS_TEST_PGBOUNCER_URL="postgres://postgres@127.0.0.1:$bport/postgres?sslmode=disable"
  echo "with-postgres: PgBouncer $("$pgbouncer" --version | head -1 | awk '{print $2}') (transaction mode) on 127.0.0.1:$bport" >&2
else
  echo "with-postgres: no pgbouncer binary (install the pgbouncer package); the pooler tests will skip, or fail with CI=true" >&2
fi
set +e
"$@"
rc=$?
set -e
exit $rc
