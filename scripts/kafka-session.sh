# Sourced by the demo and test scripts: uses the local Kafka for this script's run and, when
# no broker was running before, stops the one the run starts when the script exits.
kafka=compose/local/kafka.sh
kafka_owned=0
if ! $kafka status >/dev/null 2>&1; then kafka_owned=1; fi
kafka_session_end() { if ((kafka_owned)); then $kafka stop || true; fi; }
trap kafka_session_end EXIT
