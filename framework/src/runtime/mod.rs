//! Running a topology against Kafka: the app, its stream threads, tasks, commits and restore.
//!
//! ```no_run
//! use eddy::config::ConfigLoader;
//! use eddy::dsl::StreamsBuilder;
//! use eddy::runtime::App;
//! use eddy::serde::StringSerde;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("in", StringSerde, StringSerde)
//!     .map_values(|v: String| v.to_uppercase())
//!     .to("out", StringSerde, StringSerde);
//! let config = ConfigLoader::new()
//!     .flag("application.id", "shout")
//!     .flag("kafka.bootstrap_servers", "127.0.0.1:9092")
//!     .load()?;
//! // Runs until SIGTERM or SIGINT, then commits and leaves the group.
//! App::new(builder.build()?, config).run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod active_task;
mod bounded;
mod cadence;
mod error;
mod external_commits;
mod fault;
mod global_tables;
mod group_protocol;
mod instance;
mod janitor;
mod memory;
mod rebalance;
mod restarts;
mod restore;
mod setup;
mod shared_state;
mod standby;
mod standbys;
mod state_position;
mod stream_thread;
mod stream_time;
mod task_base;
mod task_manager;
mod task_phase;
mod timeline;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

pub use crate::shared::{
    HistogramSnapshot, MetricsSnapshot, StandbyStatus, Status, TaskState, TaskStatus, ThreadStatus,
};
pub(crate) use crate::shared::{Metrics, Plan};
pub use error::{RestoreFailure, RuntimeError};

use crate::config::EddyConfig;
use crate::topology::Topology;
use instance::InstanceDir;
use shared_state::Shared;

/// An Eddy app: a topology plus its configuration, ready to run as one instance of the
/// app's cluster.
pub struct App {
    topology: Topology,
    config: EddyConfig,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("application_id", &self.config.application.id)
            .finish_non_exhaustive()
    }
}

impl App {
    /// An app running `topology` with `config`.
    pub fn new(topology: Topology, config: EddyConfig) -> Self {
        App { topology, config }
    }

    /// Claims the state directory, creates the internal topics and starts the stream
    /// threads.
    ///
    /// # Errors
    /// Fails when the state directory is held by another instance, a topic the topology
    /// needs is missing, or Kafka cannot be reached.
    pub fn start(self) -> Result<RunningApp, RuntimeError> {
        self.start_stoppable(Arc::new(AtomicBool::new(false)))
    }

    /// As [`start`](Self::start), with the flag that stops the app: set before the start
    /// returns (a signal during the warm-up), the warm-up ends and no stream thread joins.
    fn start_stoppable(self, shutdown: Arc<AtomicBool>) -> Result<RunningApp, RuntimeError> {
        // Before librdkafka's and RocksDB's threads exist, so none gets an arena of its own.
        memory::limit_malloc_arenas(self.config.memory.malloc_arena_max);
        let mut config = self.config;
        let instance = Arc::new(InstanceDir::claim(
            &config.state.dir,
            &config.application.id,
            config.application.instance_id.as_deref(),
        )?);
        let (plan, protocol) = setup::retrying(
            config.processing.restart_deadline,
            "preparing the topics",
            &shutdown,
            || setup::prepare_topics(&self.topology, &config),
        )?;
        config.processing.group_protocol = protocol;
        let config = Arc::new(config);
        tracing::info!(
            application_id = config.application.id,
            instance_id = instance.instance_id(),
            topics = ?plan.subscriptions,
            "starting"
        );
        let timeline = timeline::establish(&config, &self.topology, &plan, instance.instance_id())?;
        tracing::debug!(base = ?timeline.epoch(), "timeline established");
        let snapshots = match &config.snapshot.dir {
            Some(location) => Some(location.open(&config.snapshot.s3)?),
            None => None,
        };
        let bounded = match config.processing.mode {
            crate::config::ProcessingMode::Bounded { until_ms } => Some(setup::retrying(
                config.processing.restart_deadline,
                "joining the bounded run",
                &shutdown,
                || bounded::establish(&config, &plan, &instance, until_ms),
            )?),
            crate::config::ProcessingMode::Streaming => None,
        };
        let globals = setup::retrying(
            config.processing.restart_deadline,
            "loading the global tables",
            &shutdown,
            || {
                global_tables::GlobalReader::load(
                    &config,
                    &self.topology,
                    instance.instance_id(),
                    &shutdown,
                )
            },
        )?
        .map(|reader| reader.spawn(Arc::clone(&shutdown)))
        .transpose()?;
        let fingerprint = fingerprint(&self.topology);
        let metrics = Arc::new(Metrics::default());
        if timeline.applied_here {
            metrics.add_savepoint_applied();
        }
        let status = Arc::new(Status::default());
        crate::telemetry::register_metrics(
            &metrics,
            &status,
            vec![
                opentelemetry::KeyValue::new("application_id", config.application.id.clone()),
                opentelemetry::KeyValue::new("instance_id", instance.instance_id().to_owned()),
            ],
        );
        let rocks = crate::state::RocksMemory::new(
            config.state.block_cache_bytes,
            config.state.write_buffer_bytes,
        );
        metrics.memory.set_rocks(rocks.clone());
        let shared = Arc::new(Shared {
            topology: Arc::new(self.topology),
            config: Arc::clone(&config),
            plan: Arc::new(plan),
            instance,
            metrics: Arc::clone(&metrics),
            timeline: Arc::new(timeline),
            snapshots,
            fingerprint,
            rocks: rocks.clone(),
            status: Arc::clone(&status),
            standbys: standbys::Standbys::default(),
            poisoned: std::sync::Mutex::default(),
            task_locks: task_base::TaskLocks::default(),
            bounded: bounded.as_ref().map(|(run, _)| Arc::clone(run)),
        });
        let bounded = bounded
            .map(|(run, channel)| bounded::spawn_watcher(run, channel, Arc::clone(&shutdown)))
            .transpose()?;
        // Standbys (and the warm-up) run before the stream threads join the group.
        let standby =
            if config.processing.standby_replicas > 0 || config.processing.warmup_before_join {
                let (warmed_tx, warmed_rx) = mpsc::channel();
                let warmed = config.processing.warmup_before_join.then_some(warmed_tx);
                let handle = standby::spawn(Arc::clone(&shared), Arc::clone(&shutdown), warmed)?;
                if config.processing.warmup_before_join {
                    // The warm-up bounds itself by `processing.warmup_timeout_ms`.
                    let _ = warmed_rx.recv();
                }
                Some(handle)
            } else {
                None
            };
        let (done_tx, done_rx) = mpsc::channel();
        let mut threads = Vec::new();
        // A bounded run that already finished leaves the stream threads nothing to do; an
        // app stopped while it warmed up has no thread join the group.
        let finished = shared.bounded.as_ref().is_some_and(|run| run.finished());
        let thread_count = if finished || shutdown.load(Ordering::Relaxed) {
            0
        } else {
            config.processing.threads
        };
        for index in 0..thread_count {
            let shared = Arc::clone(&shared);
            let shutdown = Arc::clone(&shutdown);
            let done = done_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("eddy-stream-{index}"))
                .spawn(move || {
                    // Reports the end even when the thread panics.
                    let _report = ReportEnd(done, index);
                    let result = stream_thread::run(Arc::clone(&shared), index, shutdown);
                    if let Err(e) = &result {
                        shared.status.fail(format!("stream thread {index}: {e}"));
                    }
                    result
                })
                .map_err(|source| RuntimeError::Spawn {
                    what: "stream",
                    source,
                })?;
            threads.push(Some(handle));
        }
        let ops = match config.ops.address {
            Some(address) => Some(crate::ops::OpsServer::start(
                address,
                crate::ops::OpsContext {
                    config: Arc::clone(&config),
                    topology: Arc::clone(&shared.topology),
                    plan: Arc::clone(&shared.plan),
                    instance_id: shared.instance.instance_id().to_owned(),
                    metrics: Arc::clone(&metrics),
                    status: Arc::clone(&status),
                },
                shared.instance.dir(),
            )?),
            None => None,
        };
        let janitor = janitor::spawn(Arc::clone(&shared), Arc::clone(&shutdown))?;
        Ok(RunningApp {
            shutdown,
            threads,
            done: done_rx,
            metrics,
            status,
            ops,
            standby,
            janitor,
            bounded,
            globals,
        })
    }

    /// Installs logging and telemetry as configured (`telemetry.*`; skipped when the program
    /// installed its own tracing subscriber), starts the app and runs it until SIGTERM or
    /// SIGINT (then shuts down cleanly) or until a stream thread fails.
    ///
    /// # Errors
    /// The first error that stopped a stream thread, or a start-up error.
    pub fn run(self) -> Result<(), RuntimeError> {
        // First of all: every thread started from here on shares the capped arenas.
        memory::limit_malloc_arenas(self.config.memory.malloc_arena_max);
        // Logs (and OTLP export, when configured) unless the program installed its own
        // subscriber; exporters flush when this guard drops at the end.
        let _telemetry = if tracing::dispatcher::has_been_set() {
            None
        } else {
            Some(crate::telemetry::Telemetry::install(
                &self.config.telemetry,
            )?)
        };
        // Signal handlers go in before the threads start, so an early SIGTERM is clean too.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|source| RuntimeError::Signals { source })?;
        let signals = runtime
            .block_on(async { Signals::install() })
            .map_err(|source| RuntimeError::Signals { source })?;
        // The signals are watched from here on, so one that comes while the app starts
        // (warming up can take minutes) stops it too.
        let shutdown = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&shutdown);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let waiter = runtime.spawn(async move {
            signals.wait(stop_rx).await;
            stop.store(true, Ordering::Relaxed);
        });
        let result = match self.start_stoppable(shutdown).and_then(RunningApp::wait) {
            Err(RuntimeError::StoppedStarting { during }) => {
                tracing::info!("stopped while {during}");
                Ok(())
            }
            other => other,
        };
        let _ = stop_tx.send(());
        let _ = runtime.block_on(waiter);
        result
    }
}

/// A short hash of the topology's description: equal for equal topologies.
fn fingerprint(topology: &Topology) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(topology.describe().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// SIGTERM and SIGINT listeners.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn install() -> std::io::Result<Self> {
        Ok(Signals {})
    }

    /// Returns on the first signal or when `stop` fires (the app ended by itself).
    async fn wait(mut self, stop: tokio::sync::oneshot::Receiver<()>) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = self.int.recv() => tracing::info!("SIGINT: shutting down"),
            _ = stop => {}
        }
        #[cfg(not(unix))]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
            _ = stop => {}
        }
    }
}

/// A started app.
pub struct RunningApp {
    shutdown: Arc<AtomicBool>,
    threads: Vec<Option<JoinHandle<Result<(), RuntimeError>>>>,
    done: mpsc::Receiver<usize>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    /// The ops HTTP server; stops when the app is dropped.
    ops: Option<crate::ops::OpsServer>,
    /// The standby thread, when standbys are configured.
    standby: Option<JoinHandle<()>>,
    /// The thread removing state of tasks no longer owned here.
    janitor: Option<JoinHandle<()>>,
    /// The thread that ends a bounded run once every task finished.
    bounded: Option<JoinHandle<()>>,
    /// The thread following the global tables' topics.
    globals: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApp")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl RunningApp {
    /// Asks every stream thread to commit, close its tasks and leave the group.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
    }

    /// The app's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// What the stream threads own and how far they got.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The address the ops HTTP server listens on, when it runs.
    pub fn ops_address(&self) -> Option<std::net::SocketAddr> {
        self.ops.as_ref().map(crate::ops::OpsServer::address)
    }

    /// Waits until every stream thread ended. When one fails, the others are shut down and
    /// the first error is returned.
    ///
    /// # Errors
    /// The first stream thread error.
    pub fn wait(mut self) -> Result<(), RuntimeError> {
        let mut first_error = None;
        let mut remaining = self.threads.len();
        while remaining > 0 {
            let Ok(index) = self.done.recv() else { break };
            remaining -= 1;
            let Some(handle) = self.threads.get_mut(index).and_then(Option::take) else {
                continue;
            };
            let result = handle
                .join()
                .unwrap_or(Err(RuntimeError::ThreadPanicked(index)));
            if let Err(e) = result {
                tracing::error!(thread = index, error = %e, "stream thread failed");
                self.shutdown.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
        // The standby thread stops with the stream threads.
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(standby) = self.standby.take() {
            let _ = standby.join();
        }
        if let Some(janitor) = self.janitor.take() {
            let _ = janitor.join();
        }
        if let Some(bounded) = self.bounded.take() {
            let _ = bounded.join();
        }
        if let Some(globals) = self.globals.take() {
            let _ = globals.join();
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Sends a stream thread's index when the thread ends, however it ends.
struct ReportEnd(mpsc::Sender<usize>, usize);

impl Drop for ReportEnd {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}
