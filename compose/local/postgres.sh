#!/usr/bin/env bash
# Local PostgreSQL without Docker: a throw-away cluster (initdb) from the Debian package,
# listening on 127.0.0.1 only, with prepared transactions enabled for two-phase sinks.
# PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` user.
#
# Usage: compose/local/postgres.sh start | stop | status
#
# `start` prints the connection URL last on stdout; a server already running on the port is
# reused.
#
# Environment:
#   EDDY_POSTGRES_PORT       TCP port (default 5433)
#   EDDY_POSTGRES_DIR        cluster directory (default /tmp/eddy-postgres-<port>; not under
#                            a home directory the `postgres` user cannot enter)
#   EDDY_POSTGRES_PREPARED   max_prepared_transactions (default 200)
#   EDDY_POSTGRES_TLS        1: TLS only, with a certificate signed by a CA made here
#                            (<dir>/ca.crt; the URL then says sslmode=require)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/certs.sh"

PORT=${EDDY_POSTGRES_PORT:-5433}
DIR=${EDDY_POSTGRES_DIR:-/tmp/eddy-postgres-$PORT}
PREPARED=${EDDY_POSTGRES_PREPARED:-200}
TLS=${EDDY_POSTGRES_TLS:-0}
URL=postgres://eddy@127.0.0.1:$PORT/postgres
((TLS)) && URL="$URL?sslmode=require"

log() { echo "postgres: $*" >&2; }
die() { echo "postgres: error: $*" >&2; exit 1; }

bin_dir() {
  local d
  d=$(compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' | sort -V | tail -n1 || true)
  [[ -n $d ]] || die "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl): run scripts/setup.sh"
  dirname "$d"
}

# Runs a PostgreSQL server program as the user that owns the cluster.
as_owner() {
  if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the unprivileged user \`postgres\` (created by the Debian package)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ready() { [[ -f $DIR/data/postmaster.pid ]] && as_owner "$(bin_dir)/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; }

start() {
  local bin
  bin=$(bin_dir)
  if ready; then
    log "reusing the server at $URL"
    echo "$URL"
    return 0
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  [[ $(id -u) == 0 ]] && chown postgres: "$DIR"
  log "initialising a cluster in $DIR"
  as_owner "$bin/initdb" -D "$DIR/data" -U eddy --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 ||
    die "initdb failed; see $DIR/initdb.log"
  local options="-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_prepared_transactions=$PREPARED -c max_connections=200"
  if ((TLS)); then
    make_certificates
    options="$options -c ssl=on -c ssl_cert_file=$DIR/server.crt -c ssl_key_file=$DIR/server.key"
    # TCP clients must use TLS; the local socket (pg_ctl's readiness check) stays open.
    printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n' >"$DIR/data/pg_hba.conf"
  fi
  log "starting PostgreSQL on 127.0.0.1:$PORT (log: $DIR/server.log)"
  # pg_ctl -w waits until the server accepts connections.
  as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start -o "$options" >/dev/null ||
    die "the server did not start; see $DIR/server.log"
  log "ready"
  echo "$URL"
}

# A CA and a certificate for 127.0.0.1 signed by it, in $DIR.
make_certificates() {
  test_certificates "$DIR" || die "could not make the TLS certificates in $DIR"
  [[ $(id -u) == 0 ]] && chown postgres: "$DIR"/server.key "$DIR"/server.crt
  return 0
}

stop() {
  if ready; then
    as_owner "$(bin_dir)/pg_ctl" -D "$DIR/data" -w -t 60 stop -m fast >/dev/null || true
    log "stopped"
  fi
  rm -rf "$DIR"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) if ready; then echo "$URL"; else exit 1; fi ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
