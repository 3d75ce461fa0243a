//! The instance's ops HTTP server: liveness, readiness, Prometheus metrics, interactive state
//! queries (answered locally or forwarded to the owner), the ownership view and savepoints.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /health` | 200 while every stream thread lives, 503 with the reason after one failed |
//! | `GET /ready` | 200 when every thread has its assignment and every task runs, else 503; the body lists the tasks |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /instances` | the group's instances, their ops addresses and partitions |
//! | `GET /state/{store}/{key}` | the committed value, from this instance or forwarded to the owner |
//! | `POST /savepoints?store=<dir>` | takes a savepoint of the whole app and returns its path |

mod admin;
mod client;
mod members;
mod prometheus;
mod query;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub(crate) use client::{encode_path_segment, http_request};
pub use members::{Member, Ownership};

use crate::config::EddyConfig;
use crate::shared::{Metrics, Plan, Status};
use crate::snapshot::{ControlChannel, ControlMessage, SnapshotError};
use crate::topology::Topology;
use crate::ErrorAction;
use members::MemberView;

/// The header that marks a state query forwarded by another instance (never forwarded again).
const FORWARDED: &str = "x-eddy-forwarded";

/// Name of the file in the instance's state directory holding the ops server's address.
pub const ADDRESS_FILE: &str = "ops-address";

/// The ops server failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The address cannot be bound (in use, not local).
    #[error("ops server: cannot listen on {address}: {source}")]
    Bind {
        /// The configured address (`ops.address`).
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file or thread could not be created.
    #[error("ops server: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Kafka failed.
    #[error("ops server: {what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The control topic failed.
    #[error("ops server: {0}")]
    Snapshot(#[from] SnapshotError),
}

impl OpsError {
    /// What to do about it: a bind or I/O failure needs another configuration; Kafka errors
    /// follow their classification.
    pub fn action(&self) -> ErrorAction {
        match self {
            OpsError::Kafka { source, .. } => crate::kafka::classify(source),
            OpsError::Snapshot(e) => e.action(),
            OpsError::Bind { .. } | OpsError::Io { .. } => ErrorAction::Fatal,
        }
    }
}

/// What the ops server reads from the running app.
pub(crate) struct OpsContext {
    pub config: Arc<EddyConfig>,
    pub topology: Arc<Topology>,
    pub plan: Arc<Plan>,
    pub instance_id: String,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
}

struct Server {
    ctx: OpsContext,
    /// Created on first use: it needs the broker.
    members: Mutex<Option<MemberView>>,
}

impl Server {
    fn ownership(&self) -> Result<Ownership, OpsError> {
        let mut slot = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        let view = match slot.as_mut() {
            Some(view) => view,
            None => slot.insert(MemberView::new(&self.ctx.config, &self.ctx.instance_id)?),
        };
        view.ownership()
    }
}

/// A running ops server; dropping it stops it.
pub(crate) struct OpsServer {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for OpsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl OpsServer {
    /// Binds `address`, writes the bound address to `<dir>/ops-address`, announces it on the
    /// control topic and serves on a thread of its own.
    pub(crate) fn start(
        address: SocketAddr,
        ctx: OpsContext,
        dir: &Path,
    ) -> Result<Self, OpsError> {
        let listener = std::net::TcpListener::bind(address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| OpsError::Bind { address, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| OpsError::Bind { address, source })?;
        let advertised = ctx
            .config
            .ops
            .advertised
            .clone()
            .unwrap_or_else(|| bound.to_string());
        write_address(&dir.join(ADDRESS_FILE), &advertised)?;
        announce(&ctx, &advertised);
        tracing::info!(address = %bound, advertised, "ops server listening");
        let server = Arc::new(Server {
            ctx,
            members: Mutex::new(None),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| OpsError::Io { what, source }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting the ops runtime"))?;
        let thread = std::thread::Builder::new()
            .name("eddy-ops".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "ops server cannot listen");
                            return;
                        }
                    };
                    let app = router(server);
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "ops server stopped");
                    }
                });
            })
            .map_err(io("spawning the ops thread"))?;
        Ok(OpsServer {
            address: bound,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_address(path: &Path, address: &str) -> Result<(), OpsError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, address)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| OpsError::Io {
            what: format!("writing {}", path.display()),
            source,
        })
}

/// Tells the other instances where this one answers; queries for its keys cannot be forwarded
/// until it did, so a failure is logged loudly but does not stop the app.
fn announce(ctx: &OpsContext, address: &str) {
    let message = ControlMessage::Instance {
        instance: ctx.instance_id.clone(),
        ops_address: address.to_owned(),
        started_ms: crate::record::wall_clock_ms(),
    };
    let client = format!("{}-{}-announce", ctx.config.application.id, ctx.instance_id);
    let sent = ControlChannel::open(
        &ctx.config.kafka,
        &ctx.config.application.id,
        &client,
        false,
    )
    .and_then(|channel| channel.send(&message, Duration::from_secs(10)));
    if let Err(e) = sent {
        tracing::error!(error = %e, "cannot announce the ops address; other instances will not forward queries here");
    }
}

fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/instances", get(instances))
        .route("/state/{store}/{key}", get(query::state_query))
        .route("/savepoints", post(savepoint))
        .with_state(server)
}

fn json_response(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(body)).into_response()
}

/// A JSON answer that ends a handler early (an error, or a query's refusal).
struct Reply {
    status: u16,
    body: Value,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply { status, body }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        json_response(self.status, self.body)
    }
}

async fn health(State(server): State<Arc<Server>>) -> Response {
    match server.ctx.status.failure() {
        None => json_response(200, json!({"status": "ok"})),
        Some(reason) => json_response(503, json!({"status": "failed", "reason": reason})),
    }
}

async fn ready(State(server): State<Arc<Server>>) -> Response {
    let status = &server.ctx.status;
    let ready = status.ready(server.ctx.config.processing.threads);
    let body = json!({
        "ready": ready,
        "instance_id": server.ctx.instance_id,
        "threads": status.threads(),
        "standbys": status.standbys(),
    });
    json_response(if ready { 200 } else { 503 }, body)
}

async fn metrics(State(server): State<Arc<Server>>) -> Response {
    let ctx = &server.ctx;
    let text = prometheus::render(
        &prometheus::Identity {
            application_id: &ctx.config.application.id,
            instance_id: &ctx.instance_id,
        },
        &ctx.metrics,
        &ctx.status,
        ctx.config.processing.threads,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Runs blocking Kafka or file work off the server's event loop.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Reply> + Send + 'static,
) -> Result<T, Reply> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(reply(500, json!({"error": e.to_string()}))))
}

async fn instances(State(server): State<Arc<Server>>) -> Response {
    let result = blocking(move || {
        server
            .ownership()
            .map(|view| json!({"instance_id": server.ctx.instance_id, "ownership": view}))
            .map_err(|e| reply(503, json!({"error": e.to_string()})))
    })
    .await;
    match result {
        Ok(body) => json_response(200, body),
        Err(r) => r.into_response(),
    }
}

/// Query parameters of `POST /savepoints`.
#[derive(Debug, serde::Deserialize)]
struct SavepointParams {
    /// Snapshot store location; defaults to `snapshot.dir`.
    store: Option<String>,
    /// Seconds each round may take (default 120).
    timeout_secs: Option<u64>,
}

/// The longest round a caller may ask a savepoint for: every instance pauses its inputs
/// while a round runs.
const MAX_SAVEPOINT_TIMEOUT_SECS: u64 = 600;

async fn savepoint(
    State(server): State<Arc<Server>>,
    headers: axum::http::HeaderMap,
    Query(params): Query<SavepointParams>,
) -> Response {
    if let Err(refused) = admin::authorize(&server.ctx.config.ops, &headers) {
        return refused.into_response();
    }
    let result = blocking(move || {
        let config = &server.ctx.config;
        let store = admin::savepoint_store(config, params.store)?;
        let timeout_secs = params.timeout_secs.unwrap_or(120);
        if !(1..=MAX_SAVEPOINT_TIMEOUT_SECS).contains(&timeout_secs) {
            return Err(reply(
                400,
                json!({"error": format!("timeout_secs must be from 1 to {MAX_SAVEPOINT_TIMEOUT_SECS}, got {timeout_secs}")}),
            ));
        }
        let timeout = Duration::from_secs(timeout_secs);
        let mut progress = |line: &str| tracing::info!(progress = line, "savepoint");
        let store = store
            .open(&config.snapshot.s3)
            .map_err(|e| reply(500, json!({"error": e.to_string()})))?;
        let (path, manifest) = crate::snapshot::create_savepoint_retrying(
            &config.kafka,
            &config.application.id,
            store.as_ref(),
            timeout,
            5,
            &mut progress,
        )
        .map_err(|e| reply(500, json!({"error": e.to_string()})))?;
        Ok(json!({
            "id": manifest.id,
            "path": path,
            "tasks": manifest.tasks.len(),
        }))
    })
    .await;
    match result {
        Ok(body) => json_response(200, body),
        Err(r) => r.into_response(),
    }
}
