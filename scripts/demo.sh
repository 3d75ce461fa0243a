#!/usr/bin/env bash
# The demo: starts a local Kafka, runs an example app against it, prints what it did, cleans up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/kafka-session.sh

echo "demo: building (the first build compiles librdkafka and RocksDB and takes a while)" >&2
cargo build -p transactions-tour --locked
bootstrap=$($kafka start | tail -n1)
echo "demo: Kafka at $bootstrap" >&2
"$CARGO_TARGET_DIR/debug/transactions-tour" "$bootstrap"
