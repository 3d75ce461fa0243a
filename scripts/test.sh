#!/usr/bin/env bash
# Runs every test of the workspace against a real local Kafka, started here and stopped after
# (a broker that was already running is reused and left running).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/kafka-session.sh

# Start the broker while the tests compile; both take a while.
start_log=$(mktemp)
$kafka start >"$start_log" 2>&1 &
kafka_pid=$!

cargo build --workspace --all-targets --locked

if ! wait "$kafka_pid"; then
  cat "$start_log" >&2
  echo "test: the local Kafka did not start; tests that need it cannot run" >&2
  exit 1
fi
EDDY_BOOTSTRAP_SERVERS=$(tail -n1 "$start_log")
export EDDY_BOOTSTRAP_SERVERS
echo "test: Kafka at $EDDY_BOOTSTRAP_SERVERS" >&2

cargo test --workspace --all-targets --locked --no-fail-fast
cargo test --workspace --doc --locked
