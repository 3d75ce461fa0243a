# Eddy's entry points. A newcomer needs two: `make demo` and `make test`.
SHELL := /bin/bash

# Build output is cached outside the clone so repeated runs on one machine reuse it.
CARGO_TARGET_DIR ?= $(HOME)/.cache/eddy/target
export CARGO_TARGET_DIR

.PHONY: setup demo test bench lint fmt kafka-start kafka-stop kafka-status

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

test: setup
	@scripts/test.sh

# Eddy against Kafka Streams and raw librdkafka; BENCH_ARGS="--records N --repeats R".
bench: setup
	@scripts/bench.sh $(BENCH_ARGS)

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

kafka-start: setup
	@compose/local/kafka.sh start

kafka-stop:
	@compose/local/kafka.sh stop

kafka-status:
	@compose/local/kafka.sh status
