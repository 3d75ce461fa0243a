//! JSON for Eddy apps: serdes for keys, values and state stores in serde_json's encoding, with
//! optional JSON Schema validation.
//!
//! [`JsonSerde`] turns Rust types that derive serde's `Serialize` and `Deserialize` into JSON
//! and back, [`GenericJsonSerde`] works on [`serde_json::Value`]s. Either can be built
//! [`with_schema`](JsonSerde::with_schema): the schema is compiled once (draft from its
//! `$schema`, 2020-12 without one; remote `$ref`s are never fetched), and then every record
//! written and every record read must satisfy it.
//!
//! Errors keep Eddy's distinction, though a JSON serde has nothing that can fail by itself:
//! bytes that are not JSON, JSON that does not fit the type and records that break the schema
//! are all the record's fault, and go to the app's deserialization handler (fail, skip, dead
//! letter). A message names what was wrong: serde_json's text with its line and column, or
//! the first few schema failures, each with the record's JSON pointer path and the schema
//! rule (keyword and schema path), without the record's values. Writing a record that breaks
//! the schema fails the same way, so an app never publishes one.
//!
//! Formats: `json` without a schema, `json-schema:<the schema as canonical JSON>` with one,
//! so a savepoint restore tells them apart: a serde without a schema reads any JSON; one with
//! a schema reads data written under the same schema, and a changed (or added) schema is
//! refused.

mod json_serde;
mod schema;

pub use json_serde::{GenericJsonSerde, JsonSerde};
pub use schema::JsonError;
pub use serde_json;
