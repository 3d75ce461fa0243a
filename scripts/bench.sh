#!/usr/bin/env bash
# The benchmark: Eddy against Kafka Streams and a raw librdkafka loop on a local Kafka (started
# here and stopped after, unless one was running), and the PostgreSQL sinks' rows per second. Arguments go to eddy-bench
# (--records N --repeats R --partitions P). The report lands in target/eddy-bench/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/kafka-session.sh

echo "bench: building release binaries (the first release build compiles librdkafka and RocksDB)" >&2
cargo build --release --locked -p eddy -p wordcount -p eddy-bench --bins
echo "bench: building the Kafka Streams side with Maven" >&2
mvn -q -B -Dstyle.color=never -f bench/kafka-streams/pom.xml package -DskipTests
bootstrap=$($kafka start | tail -n1)
# The sinks' measurement writes to a local PostgreSQL, started here unless one runs.
postgres=compose/local/postgres.sh
if ! $postgres status >/dev/null 2>&1; then
  trap 'kafka_session_end; $postgres stop || true' EXIT
fi
postgres_url=$($postgres start | tail -n1)
EDDY_BOOTSTRAP_SERVERS=$bootstrap EDDY_POSTGRES_URL=$postgres_url "$CARGO_TARGET_DIR/release/eddy-bench" "$@"
