#!/usr/bin/env bash
# Local Apache Kafka (KRaft, official jars from Maven Central) without Docker: fetch, start, stop, status.
#
# Usage: compose/local/kafka.sh fetch | start [--brokers N] | stop | status
#        | restart-broker ID [--kill] | logs | print-config [BROKERS [ID]]
#
# restart-broker stops broker ID with SIGTERM (with --kill: SIGKILL, no shutdown at all),
# starts it again and waits until the whole cluster answers.
#
# Environment:
#   EDDY_CACHE_DIR             cache root (default ~/.cache/eddy); jars in kafka-<version>/libs
#   EDDY_KAFKA_PORT            first client port (default 9092); broker i listens on PORT+2(i-1),
#                              its controller on the next port
#   EDDY_KAFKA_RUN_DIR         data, config, pid and log files (default $EDDY_CACHE_DIR/run/kafka-PORT)
#   EDDY_KAFKA_HEAP            JVM heap per broker (default 512m)
#   EDDY_KAFKA_START_TIMEOUT   seconds to wait for readiness (default 180)
#   EDDY_KAFKA_CLUSTER_ID      the KRaft cluster id to format with (default: a random one)
#   EDDY_KAFKA_SSL_KEYSTORE    a PKCS12 keystore (with EDDY_KAFKA_SSL_PASSWORD): broker i also
#                              listens with TLS on its client port + 100, and with SASL_SSL
#                              (SCRAM-SHA-512) on its client port + 200
#   EDDY_KAFKA_SCRAM_USERS     `name=password` pairs separated by spaces, created at format time
#                              for the SASL_SSL listener
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM=$HERE/kafka/pom.xml
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
CACHE_DIR=${EDDY_CACHE_DIR:-$HOME/.cache/eddy}
LIBS=$CACHE_DIR/kafka-$KAFKA_VERSION/libs
BASE_PORT=${EDDY_KAFKA_PORT:-9092}
RUN_DIR=${EDDY_KAFKA_RUN_DIR:-$CACHE_DIR/run/kafka-$BASE_PORT}
HEAP=${EDDY_KAFKA_HEAP:-512m}
START_TIMEOUT=${EDDY_KAFKA_START_TIMEOUT:-180}
STOP_TIMEOUT=60

log() { echo "kafka: $*" >&2; }
die() { echo "kafka: error: $*" >&2; exit 1; }

client_port() { echo $((BASE_PORT + 2 * ($1 - 1))); }
controller_port() { echo $((BASE_PORT + 2 * ($1 - 1) + 1)); }
broker_count() { [[ -f $RUN_DIR/brokers ]] && cat "$RUN_DIR/brokers" || echo 0; }
bootstrap() {
  local n=$1 i out=""
  for ((i = 1; i <= n; i++)); do out+="${out:+,}127.0.0.1:$(client_port "$i")"; done
  echo "$out"
}
pid_of() { [[ -f $RUN_DIR/broker-$1/pid ]] && cat "$RUN_DIR/broker-$1/pid" || true; }
alive() { local pid; pid=$(pid_of "$1"); [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }
probe() { python3 "$HERE/kafka_probe.py" --port "$(client_port "$1")" --expect-brokers "$2" >/dev/null 2>&1; }

with_lock() {
  mkdir -p "$CACHE_DIR/run"
  exec 9>"$CACHE_DIR/run/kafka-$BASE_PORT.lock"
  flock 9
}

fetch() {
  [[ -f $LIBS/.complete ]] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is missing: run scripts/setup.sh"
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  rm -rf "$LIBS.tmp"
  mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$LIBS.tmp" || die "Maven could not fetch the Kafka jars (see output above)"
  rm -rf "$LIBS"
  mv "$LIBS.tmp" "$LIBS"
  touch "$LIBS/.complete"
}

write_config() {
  local id=$1 n=$2 dir=$3 voters="" i rf isr listeners advertised protocols
  for ((i = 1; i <= n; i++)); do voters+="${voters:+,}$i@127.0.0.1:$(controller_port "$i")"; done
  rf=$((n < 3 ? n : 3))
  isr=$((n < 3 ? 1 : 2))
  listeners="PLAINTEXT://127.0.0.1:$(client_port "$id"),CONTROLLER://127.0.0.1:$(controller_port "$id")"
  advertised="PLAINTEXT://127.0.0.1:$(client_port "$id")"
  protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ -n ${EDDY_KAFKA_SSL_KEYSTORE:-} ]]; then
    local tls="127.0.0.1:$(($(client_port "$id") + 100))" sasl="127.0.0.1:$(($(client_port "$id") + 200))"
    listeners+=",SSL://$tls,SASL_SSL://$sasl"
    advertised+=",SSL://$tls,SASL_SSL://$sasl"
    protocols+=",SSL:SSL,SASL_SSL:SASL_SSL"
  fi
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
group.consumer.min.session.timeout.ms=6000
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=250
group.consumer.heartbeat.interval.ms=250
group.consumer.assignment.interval.ms=100
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
transaction.remove.expired.transaction.cleanup.interval.ms=60000
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
PROPS
  if [[ -n ${EDDY_KAFKA_SSL_KEYSTORE:-} ]]; then
    cat >>"$dir/server.properties" <<PROPS
ssl.keystore.type=PKCS12
ssl.keystore.location=$EDDY_KAFKA_SSL_KEYSTORE
ssl.keystore.password=${EDDY_KAFKA_SSL_PASSWORD:?EDDY_KAFKA_SSL_PASSWORD is needed with EDDY_KAFKA_SSL_KEYSTORE}
ssl.key.password=$EDDY_KAFKA_SSL_PASSWORD
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
PROPS
  fi
}

# `--add-scram` arguments of the format tool for EDDY_KAFKA_SCRAM_USERS.
scram_args() {
  local pair
  for pair in ${EDDY_KAFKA_SCRAM_USERS:-}; do
    printf '%s\n' "--add-scram" "SCRAM-SHA-512=[name=${pair%%=*},password=${pair#*=}]"
  done
}

start_broker() {
  local id=$1 dir=$RUN_DIR/broker-$1
  command -v java >/dev/null || die "Java is missing: run scripts/setup.sh"
  nohup java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" >>"$dir/broker.log" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/pid"
}

wait_ready() {
  local n=$1 deadline=$((SECONDS + START_TIMEOUT)) i ready
  while true; do
    ready=1
    for ((i = 1; i <= n; i++)); do
      if ! alive "$i"; then
        log "broker $i exited during startup; last lines of $RUN_DIR/broker-$i/broker.log:"
        tail -n 30 "$RUN_DIR/broker-$i/broker.log" >&2 || true
        die "broker $i failed to start; full log: $RUN_DIR/broker-$i/broker.log"
      fi
      probe "$i" "$n" || ready=0
    done
    ((ready)) && return 0
    if ((SECONDS >= deadline)); then
      for ((i = 1; i <= n; i++)); do log "broker $i log: $RUN_DIR/broker-$i/broker.log"; done
      die "cluster not ready after ${START_TIMEOUT}s"
    fi
    sleep 0.2 # poll interval of a condition wait with a deadline
  done
}

running_and_ready() {
  local n i
  n=$(broker_count)
  ((n > 0)) || return 1
  for ((i = 1; i <= n; i++)); do alive "$i" && probe "$i" "$n" || return 1; done
}

stop_all() {
  local n i pid deadline killed=0 signalled=0
  n=$(broker_count)
  ((n > 0)) || return 0
  for ((i = 1; i <= n; i++)); do
    if alive "$i"; then kill -TERM "$(pid_of "$i")" 2>/dev/null && signalled=$((signalled + 1)) || true; fi
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  for ((i = 1; i <= n; i++)); do
    while alive "$i" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$i"; then
      pid=$(pid_of "$i")
      log "broker $i (pid $pid) did not stop within ${STOP_TIMEOUT}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      killed=1
    fi
    rm -f "$RUN_DIR/broker-$i/pid"
  done
  ((killed || !signalled)) || log "stopped $signalled broker(s)"
}

cmd_start() {
  local n=1
  while (($#)); do
    case $1 in
      --brokers) n=${2:?--brokers needs a number}; shift 2 ;;
      *) die "unknown start option: $1" ;;
    esac
  done
  [[ $n =~ ^[1-9]$ ]] || die "--brokers must be between 1 and 9, got $n"
  command -v python3 >/dev/null || die "python3 is missing: run scripts/setup.sh"
  fetch
  with_lock
  if running_and_ready; then
    local have
    have=$(broker_count)
    ((have == n)) || die "a $have-broker cluster is already running on port $BASE_PORT; stop it first"
    log "reusing the running $n-broker cluster"
    bootstrap "$n"
    return 0
  fi
  stop_all
  rm -rf "$RUN_DIR"
  mkdir -p "$RUN_DIR"
  echo "$n" >"$RUN_DIR/brokers"
  local cluster_id i
  # A random id is URL-safe base64 and may begin with `-`; the `--cluster-id=` form keeps the
  # format tool from reading such an id as an option.
  cluster_id=${EDDY_KAFKA_CLUSTER_ID:-$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')}
  for ((i = 1; i <= n; i++)); do
    mkdir -p "$RUN_DIR/broker-$i"
    write_config "$i" "$n" "$RUN_DIR/broker-$i"
    local extra=()
    mapfile -t extra < <(scram_args)
    java -cp "$LIBS/*" kafka.tools.StorageTool format --cluster-id="$cluster_id" \
      -c "$RUN_DIR/broker-$i/server.properties" "${extra[@]}" >"$RUN_DIR/broker-$i/format.log" 2>&1 ||
      die "formatting broker $i storage failed; see $RUN_DIR/broker-$i/format.log"
  done
  for ((i = 1; i <= n; i++)); do start_broker "$i"; done
  log "starting $n broker(s), Kafka $KAFKA_VERSION, logs in $RUN_DIR/broker-*/broker.log"
  wait_ready "$n"
  log "ready"
  bootstrap "$n"
}

cmd_status() {
  local n i state rc=0
  n=$(broker_count)
  if ((n == 0)); then
    echo "not running (no cluster in $RUN_DIR)"
    return 3
  fi
  for ((i = 1; i <= n; i++)); do
    if ! alive "$i"; then state="stopped"; rc=3
    elif probe "$i" "$n"; then state="ready (pid $(pid_of "$i"))"
    else state="running, not answering (pid $(pid_of "$i"))"; rc=3
    fi
    echo "broker $i  127.0.0.1:$(client_port "$i")  $state  log $RUN_DIR/broker-$i/broker.log"
  done
  echo "bootstrap.servers=$(bootstrap "$n")"
  return $rc
}

cmd_restart_broker() {
  local id=${1:?restart-broker needs a broker id} signal=TERM n pid deadline
  [[ ${2:-} == --kill ]] && signal=KILL
  [[ -z ${2:-} || ${2:-} == --kill ]] || die "unknown restart-broker option: $2"
  with_lock
  n=$(broker_count)
  ((id >= 1 && id <= n)) || die "no broker $id in the running cluster"
  if alive "$id"; then
    pid=$(pid_of "$id")
    kill -"$signal" "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  start_broker "$id"
  wait_ready "$n"
  log "broker $id restarted (SIG$signal)"
}

case ${1:-} in
  fetch) fetch; echo "$LIBS" ;;
  start) shift; cmd_start "$@" ;;
  stop) with_lock; stop_all ;;
  status) cmd_status ;;
  restart-broker) shift; cmd_restart_broker "$@" ;;
  logs) ls "$RUN_DIR"/broker-*/broker.log ;;
  print-config)
    # The server.properties that broker ${3:-1} of a ${2:-1}-broker cluster gets, on stdout.
    tmp=$(mktemp -d)
    write_config "${3:-1}" "${2:-1}" "$tmp"
    sed "s|$tmp|<run-dir>|" "$tmp/server.properties"
    rm -rf "$tmp"
    ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
