#!/usr/bin/env bash
# The no-Docker equivalent of compose/docker-compose.yml: the local Kafka and N wordcount
# instances as processes, each with its own state directory and ops server.
#
# Usage: compose/local/cluster.sh up [N] | scale N | status | down [--kafka]
#
#   up [N]        starts the local Kafka (or reuses a running one), creates the topics, and
#                 scales the app to N instances (default 3)
#   scale N       starts or stops (SIGTERM, newest first) instances until N run
#   status        each instance: pid, ops address, GET /ready
#   down          stops every instance; with --kafka the local Kafka too
#
# Environment:
#   EDDY_CLUSTER_DIR    state directories, logs and pid files (default ~/.cache/eddy/cluster)
#   EDDY_CLUSTER_APP    application.id (default wordcount)
#   EDDY_CLUSTER_INPUT  input topic (default lines); EDDY_CLUSTER_OUTPUT output topic
#                       (default word-counts); both get 6 partitions
#   EDDY_CLUSTER_BIN    the app binary (default $CARGO_TARGET_DIR/debug/wordcount)
#   EDDY_BOOTSTRAP_SERVERS  an existing broker to use instead of the local Kafka
#
# The instances' telemetry and checkpoints are configured like the compose services: JSON
# logs, checkpoints in $EDDY_CLUSTER_DIR/snapshots. The collector, Prometheus, Jaeger and the
# schema registry are not started here: no package registry this setup may use carries them.
# Prometheus can scrape each instance's /metrics directly (see `status` for the addresses).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${EDDY_CLUSTER_DIR:-$HOME/.cache/eddy/cluster}
APP=${EDDY_CLUSTER_APP:-wordcount}
INPUT=${EDDY_CLUSTER_INPUT:-lines}
OUTPUT=${EDDY_CLUSTER_OUTPUT:-word-counts}
BIN=${EDDY_CLUSTER_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/eddy/target}/debug/wordcount}
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/kafka/pom.xml")
LIBS=${EDDY_CACHE_DIR:-$HOME/.cache/eddy}/kafka-$KAFKA_VERSION/libs

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

bootstrap() {
  if [[ -n ${EDDY_BOOTSTRAP_SERVERS:-} ]]; then echo "$EDDY_BOOTSTRAP_SERVERS"; return; fi
  "$HERE/kafka.sh" start | tail -n1
}

# Instance directories are numbered 1, 2, ...; a running one has a live pid.
pid_of() { [[ -f $DIR/instance-$1/pid ]] && cat "$DIR/instance-$1/pid" || true; }
alive() { local pid; pid=$(pid_of "$1"); [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }
running() {
  local i
  for d in "$DIR"/instance-*; do
    [[ -d $d ]] || continue
    i=${d##*-}
    if alive "$i"; then echo "$i"; fi
  done | sort -n
}
ops_address() { cat "$DIR/instance-$1/state/$APP/ops-address" 2>/dev/null || true; }

# GET path from host:port with bash's /dev/tcp; prints the status code.
http_status() {
  local host=${1%:*} port=${1##*:} line
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
  read -r line <&3 || true
  exec 3<&- 3>&-
  echo "$line" | awk '{print $2}'
}

create_topics() {
  local servers=$1 topic
  for topic in "$INPUT" "$OUTPUT"; do
    java -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$servers" \
      --create --if-not-exists --topic "$topic" --partitions 6 >/dev/null
  done
}

start_instance() {
  local i=$1 servers=$2 d=$DIR/instance-$1
  mkdir -p "$d/state" "$DIR/snapshots"
  rm -f "$d/state/$APP/ops-address"
  EDDY__APPLICATION__ID=$APP \
  EDDY__KAFKA__BOOTSTRAP_SERVERS=$servers \
  EDDY__APP__INPUT_TOPIC=$INPUT \
  EDDY__APP__OUTPUT_TOPIC=$OUTPUT \
  EDDY__STATE__DIR=$d/state \
  EDDY__SNAPSHOT__DIR=$DIR/snapshots \
  EDDY__TELEMETRY__LOG_FORMAT=json \
    nohup "$BIN" >>"$d/log" 2>&1 </dev/null &
  echo $! >"$d/pid"
  log "instance $i started (pid $!, log $d/log)"
}

wait_ready() {
  local i=$1 deadline=$((SECONDS + 120)) address
  while ((SECONDS < deadline)); do
    alive "$i" || die "instance $i exited; see $DIR/instance-$i/log"
    address=$(ops_address "$i")
    if [[ -n $address && $(http_status "$address" /ready 2>/dev/null || true) == 200 ]]; then
      log "instance $i ready, ops at http://$address"
      return 0
    fi
    sleep 0.2 # poll interval of a deadline wait
  done
  die "instance $i not ready after 120 s; see $DIR/instance-$i/log"
}

stop_instance() {
  local i=$1 pid deadline=$((SECONDS + 60))
  pid=$(pid_of "$i")
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || { kill -KILL "$pid" 2>/dev/null || true; log "instance $i killed after 60 s"; break; }
    sleep 0.1 # poll interval of a deadline wait
  done
  rm -f "$DIR/instance-$i/pid"
  log "instance $i stopped"
}

cmd_scale() {
  local want=${1:?usage: scale N} servers i have
  [[ $want =~ ^[0-9]+$ ]] || die "scale: N must be a number, got '$want'"
  [[ -x $BIN ]] || die "$BIN is missing: build it with cargo build -p wordcount"
  mapfile -t have < <(running)
  if ((${#have[@]} < want)); then
    servers=$(bootstrap)
    local started=()
    i=0
    while (( ${#have[@]} + ${#started[@]} < want )); do
      i=$((i + 1))
      if alive "$i"; then continue; fi
      start_instance "$i" "$servers"
      started+=("$i")
    done
    for i in "${started[@]}"; do wait_ready "$i"; done
  else
    while ((${#have[@]} > want)); do
      stop_instance "${have[-1]}"
      unset 'have[-1]'
    done
  fi
  log "$(running | wc -l) instance(s) running"
}

cmd_up() {
  local n=${1:-3} servers
  servers=$(bootstrap)
  create_topics "$servers"
  log "Kafka at $servers; topics $INPUT -> $OUTPUT"
  cmd_scale "$n"
}

cmd_status() {
  local i address
  for i in $(running); do
    address=$(ops_address "$i")
    echo "instance $i pid $(pid_of "$i") ops http://$address ready $(http_status "$address" /ready 2>/dev/null || echo '?')"
  done
}

cmd_down() {
  local i
  for i in $(running); do stop_instance "$i"; done
  if [[ ${1:-} == --kafka ]]; then "$HERE/kafka.sh" stop; fi
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  scale) shift; cmd_scale "$@" ;;
  status) cmd_status ;;
  down) shift; cmd_down "$@" ;;
  *) sed -n '2,24p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
