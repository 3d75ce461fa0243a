//! Interactive state queries: which task holds a key, answering from the local store or
//! forwarding to the owning instance, and how keys and values of a store's serde formats read
//! as text and JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{blocking, json_response, reply, Reply, Server, FORWARDED};
use super::{encode_path_segment, http_request};

use crate::kafka::murmur2_partition;
use crate::shared::Plan;
use crate::state::{StoreKind, WindowLayout};
use crate::topology::Topology;

/// The time range of a window store query (`?from=&to=`, window starts in milliseconds,
/// both inclusive; the whole store when left out).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub(super) struct TimeRange {
    from: Option<i64>,
    to: Option<i64>,
}

/// `GET /state/{store}/{key}[?from=&to=]`: answers from this instance's committed store, or
/// forwards the query once to the instance that owns the key's partition. A key-value store
/// answers the key's value; a window store the key's windows starting in `[from, to]`; a
/// session store the key's sessions.
pub(super) async fn state_query(
    State(server): State<Arc<Server>>,
    UrlPath((store, key)): UrlPath<(String, String)>,
    Query(range): Query<TimeRange>,
    headers: HeaderMap,
) -> Response {
    let forwarded = headers.contains_key(FORWARDED);
    match blocking(move || answer_query(&server, &store, &key, range, forwarded)).await {
        Ok(response) => response,
        Err(r) => r.into_response(),
    }
}

/// Answers a query here, or forwards it to the owner unless it was forwarded already.
fn answer_query(
    server: &Server,
    store: &str,
    key: &str,
    range: TimeRange,
    forwarded: bool,
) -> Result<Response, Reply> {
    let ctx = &server.ctx;
    let route = route(&ctx.topology, &ctx.plan, store, key)
        .map_err(|r| reply(r.status, json!({"error": r.message})))?;
    let layout = ctx
        .topology
        .stores
        .get(store)
        .and_then(|s| s.window)
        .map(|w| w.layout);
    if let (Some(layout), Some(reader)) = (layout, ctx.status.reader(store, route.partition)) {
        let failed = |e: crate::state::StateError| reply(503, json!({"error": e.to_string()}));
        let found: Vec<Value> = match layout {
            WindowLayout::Time => reader
                .windows(
                    &route.key,
                    range.from.unwrap_or(i64::MIN),
                    range.to.unwrap_or(i64::MAX),
                )
                .map_err(failed)?
                .into_iter()
                .map(|(start, v)| json!({"start": start, "value": decode_value(&route.value_format, &v)}))
                .collect(),
            WindowLayout::Session => reader
                .sessions(&route.key)
                .map_err(failed)?
                .into_iter()
                .filter(|(start, end, _)| {
                    *end >= range.from.unwrap_or(i64::MIN) && *start <= range.to.unwrap_or(i64::MAX)
                })
                .map(|(start, end, v)| {
                    json!({"start": start, "end": end, "value": decode_value(&route.value_format, &v)})
                })
                .collect(),
            WindowLayout::Versioned => {
                let versions = reader.versions(&route.key).map_err(failed)?;
                let (from, to) = (range.from.unwrap_or(i64::MIN), range.to.unwrap_or(i64::MAX));
                versions
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (valid_from, value))| {
                        let until = versions.get(i + 1).map(|(next, _)| *next);
                        // Valid over [valid_from, until): shown when that meets [from, to].
                        let meets = *valid_from <= to && until.is_none_or(|u| u > from);
                        meets.then(|| {
                            json!({
                                "from": valid_from,
                                "to": until,
                                "value": value.as_deref().map(|v| decode_value(&route.value_format, v)),
                            })
                        })
                    })
                    .collect()
            }
        };
        let body = json!({
            "store": store,
            "key": key,
            "partition": route.partition,
            "instance_id": ctx.instance_id,
            (if layout == WindowLayout::Versioned { "versions" } else { "windows" }): found,
        });
        return Ok(json_response(
            if found.is_empty() { 404 } else { 200 },
            body,
        ));
    }
    if let Some(reader) = ctx.status.reader(store, route.partition) {
        let value = reader
            .get(&route.key)
            .map_err(|e| reply(503, json!({"error": e.to_string()})))?;
        let body = json!({
            "store": store,
            "key": key,
            "partition": route.partition,
            "instance_id": ctx.instance_id,
            "value": value.as_deref().map(|v| decode_value(&route.value_format, v)),
        });
        return Ok(json_response(if value.is_some() { 200 } else { 404 }, body));
    }
    let unavailable = |why: String| {
        reply(
            503,
            json!({"error": why, "store": store, "key": key, "partition": route.partition}),
        )
    };
    if forwarded {
        return Err(unavailable(format!(
            "instance {} does not hold partition {} of `{}` (any more)",
            ctx.instance_id, route.partition, route.topic
        )));
    }
    let view = server.ownership().map_err(|e| unavailable(e.to_string()))?;
    let owner = view.owner(&route.topic, route.partition).ok_or_else(|| {
        unavailable(format!(
            "partition {} of `{}` has no owner right now (group {})",
            route.partition, route.topic, view.group_state
        ))
    })?;
    if owner.instance == ctx.instance_id {
        return Err(unavailable(format!(
            "the task for partition {} of `{}` is restoring here",
            route.partition, route.topic
        )));
    }
    let address = owner.ops_address.clone().ok_or_else(|| {
        unavailable(format!(
            "instance {} announced no ops address",
            owner.instance
        ))
    })?;
    let mut path = format!(
        "/state/{}/{}",
        encode_path_segment(store),
        encode_path_segment(key)
    );
    let bounds: Vec<String> = [("from", range.from), ("to", range.to)]
        .into_iter()
        .filter_map(|(name, at)| at.map(|at| format!("{name}={at}")))
        .collect();
    if !bounds.is_empty() {
        path = format!("{path}?{}", bounds.join("&"));
    }
    let answer = http_request(
        &address,
        "GET",
        &path,
        &[(FORWARDED, &ctx.instance_id)],
        Duration::from_secs(10),
    )
    .map_err(|e| {
        unavailable(format!(
            "forwarding to {} at {address}: {e}",
            owner.instance
        ))
    })?;
    let code = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((
        code,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response())
}

/// Where a key of a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The key as the store holds it.
    pub key: Vec<u8>,
    /// The input topic of the task holding it.
    pub topic: String,
    /// That task's partition.
    pub partition: i32,
    /// The store's value format.
    pub value_format: String,
}

/// Why a query cannot be answered, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub message: String,
}

fn refuse(status: u16, message: String) -> Refusal {
    Refusal { status, message }
}

/// Finds the task holding `key` (URL text) of `store`: the key is encoded with the store's key
/// format and partitioned like the producer that wrote the task's input (murmur2).
pub(crate) fn route(
    topology: &Topology,
    plan: &Plan,
    store: &str,
    key: &str,
) -> Result<Route, Refusal> {
    let def = topology.stores.get(store).ok_or_else(|| {
        let known: Vec<&String> = topology.stores.keys().collect();
        refuse(404, format!("no store named `{store}` (stores: {known:?})"))
    })?;
    if def.kind != StoreKind::RocksDb {
        return Err(refuse(
            501,
            format!("store `{store}` is in memory; only RocksDB stores answer queries"),
        ));
    }
    let sub = topology
        .sub_topologies
        .iter()
        .find(|s| s.stores.iter().any(|s| s == store))
        .ok_or_else(|| refuse(404, format!("no processor uses store `{store}`")))?;
    let (topic, partitions) = plan
        .sources
        .iter()
        .filter(|(_, &id)| id == sub.id)
        .find_map(|(topic, _)| Some((topic.clone(), *plan.partitions.get(topic)?)))
        .ok_or_else(|| refuse(500, format!("store `{store}`: its input topic is unknown")))?;
    let key = encode_key(&def.key_format, key)
        .map_err(|e| refuse(400, format!("key of store `{store}`: {e}")))?;
    Ok(Route {
        partition: murmur2_partition(&key, partitions),
        key,
        topic,
        value_format: def.value_format.clone(),
    })
}

/// The bytes a key in URL text stands for under serde `format`.
pub(crate) fn encode_key(format: &str, text: &str) -> Result<Vec<u8>, String> {
    // Window and session stores hold keys in their serde's bytes.
    let format = format
        .strip_prefix("window:")
        .or_else(|| format.strip_prefix("session:"))
        .unwrap_or(format);
    let format = format.strip_prefix("nullable:").unwrap_or(format);
    match format {
        "i64-be" => text
            .parse::<i64>()
            .map(|n| n.to_be_bytes().to_vec())
            .map_err(|_| format!("`{text}` is not an i64")),
        "i32-be" => text
            .parse::<i32>()
            .map(|n| n.to_be_bytes().to_vec())
            .map_err(|_| format!("`{text}` is not an i32")),
        "unit" => Err("a unit key has no value to ask for".to_owned()),
        // JSON keys are given exactly as serialized; text and bytes as they are.
        f if f.starts_with("json:") => serde_json::from_str::<Value>(text)
            .map(|_| text.as_bytes().to_vec())
            .map_err(|e| format!("`{text}` is not JSON: {e}")),
        _ => Ok(text.as_bytes().to_vec()),
    }
}

/// A stored value as JSON, decoded by serde `format`; bytes that do not decode are returned
/// as a hex string rather than dropped.
pub(crate) fn decode_value(format: &str, bytes: &[u8]) -> Value {
    let format = format.strip_prefix("nullable:").unwrap_or(format);
    let decoded = match format {
        "utf8" => std::str::from_utf8(bytes)
            .ok()
            .map(|s| Value::from(s.to_owned())),
        "i64-be" => <[u8; 8]>::try_from(bytes)
            .ok()
            .map(|b| Value::from(i64::from_be_bytes(b))),
        "i32-be" => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| Value::from(i32::from_be_bytes(b))),
        "unit" => Some(Value::Null),
        f if f.starts_with("json:") => serde_json::from_slice(bytes).ok(),
        _ => None,
    };
    decoded.unwrap_or_else(|| Value::from(hex(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_encode_by_format_and_bad_ones_are_refused_with_the_reason() {
        assert_eq!(encode_key("utf8", "héllo").unwrap(), "héllo".as_bytes());
        assert_eq!(encode_key("i64-be", "7").unwrap(), 7_i64.to_be_bytes());
        assert_eq!(
            encode_key("nullable:i32-be", "-1").unwrap(),
            (-1_i32).to_be_bytes()
        );
        assert!(encode_key("i64-be", "seven")
            .unwrap_err()
            .contains("not an i64"));
        assert!(encode_key("json:K", "{oops")
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn values_decode_by_format_and_undecodable_bytes_show_as_hex() {
        assert_eq!(
            decode_value("i64-be", &42_i64.to_be_bytes()),
            Value::from(42)
        );
        assert_eq!(decode_value("utf8", b"hi"), Value::from("hi"));
        assert_eq!(
            decode_value("json:V", br#"{"a":1}"#),
            serde_json::json!({"a": 1})
        );
        assert_eq!(decode_value("i64-be", &[1, 2]), Value::from("0102"));
    }
}
