//! Logs, traces and metrics of an instance: the log format, and OpenTelemetry export over
//! OTLP/HTTP when an endpoint is configured.

use std::sync::Arc;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryConfig};
use crate::shared::{Metrics, Status};
use crate::ErrorAction;

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("OTLP export to {endpoint}: {source}")]
    Exporter {
        /// The configured endpoint (`telemetry.otlp_endpoint`).
        endpoint: String,
        /// The exporter's error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A global log subscriber was installed already.
    #[error("a tracing subscriber is installed already: {0}")]
    AlreadyInstalled(String),
}

impl TelemetryError {
    /// What to do about it: the configuration must change.
    pub fn action(&self) -> ErrorAction {
        ErrorAction::Fatal
    }
}

/// Installed telemetry; dropping it flushes and stops the exporters.
#[derive(Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.tracer.is_some())
            .finish()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            let _ = tracer.shutdown();
        }
        if let Some(meter) = self.meter.take() {
            let _ = meter.shutdown();
        }
    }
}

impl Telemetry {
    /// Installs the global log subscriber (format from `config`, filter from `RUST_LOG`,
    /// default `info`) and, when `telemetry.otlp_endpoint` is set, OTLP trace and metric
    /// exporters.
    ///
    /// # Errors
    /// A subscriber is installed already, or an exporter cannot be built.
    pub fn install(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let logs = match config.log_format {
            LogFormat::Pretty => tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(std::io::stderr)
                .boxed(),
        };
        let mut telemetry = Telemetry::default();
        let traces = match &config.otlp_endpoint {
            Some(endpoint) => {
                let resource = Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build();
                let (tracer, meter) = exporters(endpoint, config, resource)?;
                let layer = tracing_opentelemetry::layer().with_tracer(tracer.tracer("eddy"));
                opentelemetry::global::set_meter_provider(meter.clone());
                telemetry.tracer = Some(tracer);
                telemetry.meter = Some(meter);
                Some(layer)
            }
            None => None,
        };
        // One filter for every layer, applied globally: as a filter per layer, `EnvFilter`
        // with a per-target directive (`info,eddy=debug`) dropped events outside spans.
        tracing_subscriber::registry()
            .with(filter)
            .with(logs)
            .with(traces)
            .try_init()
            .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
        Ok(telemetry)
    }
}

fn exporters(
    endpoint: &str,
    config: &TelemetryConfig,
    resource: Resource,
) -> Result<(SdkTracerProvider, SdkMeterProvider), TelemetryError> {
    let base = endpoint.trim_end_matches('/');
    let failed = |source| TelemetryError::Exporter {
        endpoint: endpoint.to_owned(),
        source,
    };
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{base}/v1/traces"))
        .build()
        .map_err(failed)?;
    let tracer = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{base}/v1/metrics"))
        .build()
        .map_err(failed)?;
    let reader = PeriodicReader::builder(metrics)
        .with_interval(config.export_interval)
        .build();
    let meter = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    Ok((tracer, meter))
}

/// An exported counter: name, description and how to read it from the app's counters.
type Counter = (
    &'static str,
    &'static str,
    fn(&crate::shared::MetricsSnapshot) -> u64,
);

/// Publishes the app's counters and gauges as OpenTelemetry instruments of the global meter
/// provider (a no-op when no exporter is installed).
pub(crate) fn register_metrics(
    metrics: &Arc<Metrics>,
    status: &Arc<Status>,
    labels: Vec<KeyValue>,
) {
    let meter = opentelemetry::global::meter_provider().meter("eddy");
    let counters: [Counter; 14] = [
        ("eddy.records.in", "Input records processed", |m| {
            m.records_in
        }),
        ("eddy.records.out", "Records sent", |m| m.records_out),
        (
            "eddy.transactions.committed",
            "Transactions committed",
            |m| m.commits,
        ),
        ("eddy.transactions.aborted", "Transactions aborted", |m| {
            m.aborts
        }),
        ("eddy.restore.records", "Changelog records replayed", |m| {
            m.restored
        }),
        (
            "eddy.processing.errors",
            "Input records whose processing failed or panicked",
            |m| m.processing_errors,
        ),
        ("eddy.thread.restarts", "Stream thread start-overs", |m| {
            m.restarts
        }),
        (
            "eddy.offset.settle_waits",
            "Tasks that waited for a previous owner's open transaction",
            |m| m.settle_waits,
        ),
        (
            "eddy.input.rewind_skips",
            "Input records delivered again after their task took them, skipped",
            |m| m.rewind_skips,
        ),
        (
            "eddy.offset.moved_during_restore",
            "Start-overs because another member moved a restoring task's committed offset",
            |m| m.moved_offsets,
        ),
        (
            "eddy.state.ahead_of_offsets",
            "Restored inputs resumed where their state stood, past the committed offset",
            |m| m.state_ahead,
        ),
        (
            "eddy.savepoints.applied",
            "Savepoints applied at start",
            |m| m.savepoints_applied,
        ),
        (
            "eddy.external.resolved.commits",
            "Prepared transactions of two-phase sinks left behind and committed",
            |m| m.external_commits_resolved,
        ),
        (
            "eddy.external.resolved.rollbacks",
            "Prepared transactions of two-phase sinks left behind and rolled back",
            |m| m.external_rollbacks_resolved,
        ),
    ];
    for (name, description, read) in counters {
        let metrics = Arc::clone(metrics);
        let labels = labels.clone();
        let _counter = meter
            .u64_observable_counter(name)
            .with_description(description)
            .with_callback(move |observer| observer.observe(read(&metrics.snapshot()), &labels))
            .build();
    }
    let oldest = Arc::clone(metrics);
    let oldest_labels = labels.clone();
    let _oldest = meter
        .f64_observable_gauge("eddy.external.oldest_prepared")
        .with_description("Age of the oldest prepared transaction in two-phase sinks")
        .with_unit("s")
        .with_callback(move |observer| {
            let ms = oldest.snapshot().external_oldest_prepared_ms;
            observer.observe(ms as f64 / 1000.0, &oldest_labels);
        })
        .build();
    let status = Arc::clone(status);
    let _lag = meter
        .i64_observable_gauge("eddy.consumer.lag")
        .with_description("Committed input records not yet processed")
        .with_callback(move |observer| {
            for thread in status.threads().values() {
                for task in &thread.tasks {
                    if let Some(lag) = task.lag {
                        let mut attributes = labels.clone();
                        attributes.push(KeyValue::new("topic", task.topic.clone()));
                        attributes.push(KeyValue::new("partition", i64::from(task.partition)));
                        observer.observe(lag, &attributes);
                    }
                }
            }
        })
        .build();
}
