//! Eddy tests against a real Apache Kafka broker: the test files are in `tests/`, the broker
//! helpers in the `eddy-testkit` crate.
