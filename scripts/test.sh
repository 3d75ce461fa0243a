#!/usr/bin/env bash
# Runs every test of the workspace against a real local Kafka, schema registry, PostgreSQL and
# S3 server, started here and stopped after (ones already running are reused and left running).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/kafka-session.sh

registry=compose/local/registry.sh
registry_owned=0
if ! $registry status >/dev/null 2>&1; then registry_owned=1; fi
postgres=compose/local/postgres.sh
postgres_owned=0
if ! $postgres status >/dev/null 2>&1; then postgres_owned=1; fi
s3=compose/local/s3.sh
s3_owned=0
if ! $s3 status >/dev/null 2>&1; then s3_owned=1; fi
test_session_end() {
  kafka_session_end
  if ((registry_owned)); then $registry stop || true; fi
  if ((postgres_owned)); then $postgres stop || true; fi
  if ((s3_owned)); then $s3 stop || true; fi
}
trap test_session_end EXIT

# Start the broker and the registry while the tests compile; all take a while.
start_log=$(mktemp)
$kafka start >"$start_log" 2>&1 &
kafka_pid=$!
registry_log=$(mktemp)
$registry start >"$registry_log" 2>&1 &
registry_pid=$!
postgres_log=$(mktemp)
$postgres start >"$postgres_log" 2>&1 &
postgres_pid=$!
s3_log=$(mktemp)
$s3 start >"$s3_log" 2>&1 &
s3_pid=$!

cargo build --workspace --all-targets --locked

# Waits (in this shell: a background job is not a subshell's child) for the start of $3 in the
# background (pid $1, output in $2); fails loudly when it did not start.
started() {
  if ! wait "$1"; then
    cat "$2" >&2
    echo "test: $3 did not start; tests that need it cannot run" >&2
    exit 1
  fi
}
started "$kafka_pid" "$start_log" "the local Kafka"
EDDY_BOOTSTRAP_SERVERS=$(tail -n1 "$start_log")
export EDDY_BOOTSTRAP_SERVERS
echo "test: Kafka at $EDDY_BOOTSTRAP_SERVERS" >&2
started "$registry_pid" "$registry_log" "the local schema registry"
EDDY_SCHEMA_REGISTRY_URL=$(tail -n1 "$registry_log")
export EDDY_SCHEMA_REGISTRY_URL
echo "test: schema registry at $EDDY_SCHEMA_REGISTRY_URL" >&2
started "$postgres_pid" "$postgres_log" "the local PostgreSQL"
EDDY_POSTGRES_URL=$(tail -n1 "$postgres_log")
export EDDY_POSTGRES_URL
echo "test: PostgreSQL at $EDDY_POSTGRES_URL" >&2
started "$s3_pid" "$s3_log" "the local S3 server"
EDDY_S3_ENDPOINT=$(tail -n1 "$s3_log")
export EDDY_S3_ENDPOINT
echo "test: S3 at $EDDY_S3_ENDPOINT" >&2

cargo test --workspace --all-targets --locked --no-fail-fast
cargo test --workspace --doc --locked
