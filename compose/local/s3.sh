#!/usr/bin/env bash
# Local S3-compatible object storage without Docker: s3s-fs (an S3 server over a directory,
# from the Rust crate registry), listening on 127.0.0.1 only, with the bucket `eddy-test`.
#
# Usage: compose/local/s3.sh fetch | start | stop | status
#
# `start` prints the endpoint URL last on stdout; a server already running on the port is
# reused. Credentials: access key `eddy`, secret key `eddy-secret`.
#
# Environment:
#   EDDY_CACHE_DIR            cache root (default ~/.cache/eddy)
#   EDDY_S3_PORT              HTTP port (default 9010)
#   EDDY_S3_START_TIMEOUT     seconds to wait for readiness (default 30)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"

VERSION=0.14.1
CACHE_DIR=${EDDY_CACHE_DIR:-$HOME/.cache/eddy}
INSTALL_DIR=$CACHE_DIR/s3s-fs-$VERSION
BIN=$INSTALL_DIR/bin/s3s-fs
PORT=${EDDY_S3_PORT:-9010}
RUN_DIR=$CACHE_DIR/run/s3-$PORT
START_TIMEOUT=${EDDY_S3_START_TIMEOUT:-30}
URL=http://127.0.0.1:$PORT
BUCKET=eddy-test

log() { echo "s3: $*" >&2; }
die() { echo "s3: error: $*" >&2; exit 1; }

fetch() {
  [[ -x $BIN ]] && return 0
  command -v cargo >/dev/null || die "cargo is missing: install Rust, then run scripts/setup.sh"
  log "building s3s-fs $VERSION from the crate registry into $INSTALL_DIR (a few minutes, once)"
  cargo install --quiet --locked s3s-fs --version "$VERSION" --features binary \
    --root "$INSTALL_DIR.tmp" || die "cargo could not build s3s-fs $VERSION"
  rm -rf "$INSTALL_DIR"
  mv "$INSTALL_DIR.tmp" "$INSTALL_DIR"
}

# Any HTTP answer (an anonymous request is refused with 403) means the server listens.
ready() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/" 2>/dev/null || true)
  [[ -n $code && $code != 000 ]]
}

start() {
  fetch
  if ready; then
    log "reusing the server at $URL"
    echo "$URL"
    return 0
  fi
  rm -rf "$RUN_DIR"
  # A bucket of s3s-fs is a directory under its root.
  mkdir -p "$RUN_DIR/data/$BUCKET"
  log "starting s3s-fs $VERSION on $URL (log: $RUN_DIR/server.log)"
  nohup "$BIN" --host 127.0.0.1 --port "$PORT" --access-key eddy --secret-key eddy-secret \
    "$RUN_DIR/data" >"$RUN_DIR/server.log" 2>&1 &
  echo $! >"$RUN_DIR/pid"
  wait_started s3s-fs "$START_TIMEOUT" "$RUN_DIR/server.log"
  log "ready; bucket $BUCKET"
  echo "$URL"
}

case ${1:-} in
  fetch) fetch ;;
  start) start ;;
  stop) stop_daemon s3s-fs ;;
  status) if ready; then echo "$URL"; else exit 1; fi ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
