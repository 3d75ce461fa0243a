#!/usr/bin/env bash
# The demo: starts a local Kafka, runs 3 wordcount instances under load, kills one with
# SIGKILL, adds another, verifies the output is exactly once, shows live metrics and state
# queries, and cleans up (the broker too, when the demo started it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/kafka-session.sh

echo "demo: building (the first build compiles librdkafka and RocksDB and takes a while)" >&2
cargo build -p wordcount -p eddy-integration-tests --bins --locked
bootstrap=$($kafka start | tail -n1)
EDDY_BOOTSTRAP_SERVERS=$bootstrap "$CARGO_TARGET_DIR/debug/eddy-demo"
