#!/usr/bin/env bash
# Local schema registry without Docker: Apicurio Registry (in-memory storage) from its
# distribution on Maven Central, serving the Confluent API under /apis/ccompat/v7.
#
# Usage: compose/local/registry.sh fetch | start | stop | status
#
# `start` prints the Confluent-compatible URL last on stdout; a registry already running on
# the port is reused.
#
# Environment:
#   EDDY_CACHE_DIR                cache root (default ~/.cache/eddy)
#   EDDY_REGISTRY_PORT            HTTP port (default 8081)
#   EDDY_REGISTRY_START_TIMEOUT   seconds to wait for readiness (default 120)
#   EDDY_REGISTRY_TLS             1: https only, with a certificate signed by a CA made here
#                                 (<cache>/run/registry-<port>/ca.crt)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/certs.sh"
source "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"

VERSION=2.6.13.Final
ARTIFACT=io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all
CACHE_DIR=${EDDY_CACHE_DIR:-$HOME/.cache/eddy}
HOME_DIR=$CACHE_DIR/apicurio-registry-$VERSION
JAR=$HOME_DIR/apicurio-registry-app-$VERSION-runner.jar
PORT=${EDDY_REGISTRY_PORT:-8081}
RUN_DIR=$CACHE_DIR/run/registry-$PORT
START_TIMEOUT=${EDDY_REGISTRY_START_TIMEOUT:-120}
TLS=${EDDY_REGISTRY_TLS:-0}
if ((TLS)); then URL=https://127.0.0.1:$PORT; else URL=http://127.0.0.1:$PORT; fi

log() { echo "registry: $*" >&2; }
die() { echo "registry: error: $*" >&2; exit 1; }

fetch() {
  [[ -f $HOME_DIR/.complete && -f $JAR ]] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is missing: run scripts/setup.sh"
  log "fetching Apicurio Registry $VERSION from Maven Central into $HOME_DIR"
  local scratch
  scratch=$(mktemp -d)
  rm -rf "$HOME_DIR.tmp"
  # Run from a scratch directory: the unpack goal writes marker files relative to it.
  (cd "$scratch" && mvn -q -B -ntp -Dstyle.color=never \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:unpack \
    -Dartifact="$ARTIFACT" -DoutputDirectory="$HOME_DIR.tmp") ||
    die "Maven could not fetch $ARTIFACT (see output above)"
  rm -rf "$scratch"
  [[ -f $HOME_DIR.tmp/apicurio-registry-app-$VERSION-runner.jar ]] ||
    die "$ARTIFACT holds no apicurio-registry-app-$VERSION-runner.jar"
  rm -rf "$HOME_DIR"
  mv "$HOME_DIR.tmp" "$HOME_DIR"
  touch "$HOME_DIR/.complete"
}

ready() {
  local trust=()
  ((TLS)) && trust=(--cacert "$RUN_DIR/ca.crt")
  curl -fsS -o /dev/null --max-time 2 "${trust[@]}" "$URL/health/ready" 2>/dev/null
}

# A CA and a certificate for 127.0.0.1 signed by it, in $RUN_DIR.
make_certificates() {
  test_certificates "$RUN_DIR" || die "could not make the TLS certificates in $RUN_DIR"
}

start() {
  fetch
  if ready; then
    log "reusing the registry at $URL"
    echo "$URL/apis/ccompat/v7"
    return 0
  fi
  mkdir -p "$RUN_DIR"
  local listen=(-Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT")
  if ((TLS)); then
    make_certificates
    listen=(-Dquarkus.http.host=127.0.0.1 -Dquarkus.http.ssl-port="$PORT"
      -Dquarkus.http.insecure-requests=disabled
      -Dquarkus.http.ssl.certificate.files="$RUN_DIR/server.crt"
      -Dquarkus.http.ssl.certificate.key-files="$RUN_DIR/server.key")
  fi
  log "starting Apicurio Registry $VERSION on $URL (log: $RUN_DIR/registry.log)"
  # In-memory storage is the default. The transaction manager's process id comes from a UUID,
  # so no second listener opens; vert.x caches go to the run directory.
  nohup java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "${listen[@]}" \
    -Dvertx.cacheDirBase="$RUN_DIR/vertx" \
    -DCoreEnvironmentBean.processImplementationClassName=com.arjuna.ats.internal.arjuna.utils.UuidProcessId \
    -jar "$JAR" >"$RUN_DIR/registry.log" 2>&1 &
  echo $! >"$RUN_DIR/pid"
  wait_started "the registry" "$START_TIMEOUT" "$RUN_DIR/registry.log"
  log "ready"
  echo "$URL/apis/ccompat/v7"
}

case ${1:-} in
  fetch) fetch ;;
  start) start ;;
  stop) stop_daemon "the registry" ;;
  status) if ready; then echo "$URL/apis/ccompat/v7"; else exit 1; fi ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
