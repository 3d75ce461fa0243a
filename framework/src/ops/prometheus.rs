//! The instance's metrics in the Prometheus text exposition format.

use std::fmt::Write as _;

use crate::shared::{HistogramSnapshot, Metrics, Status, HISTOGRAM_BUCKETS};

/// Labels every sample carries.
pub(crate) struct Identity<'a> {
    pub application_id: &'a str,
    pub instance_id: &'a str,
}

struct Out {
    text: String,
    base: String,
}

impl Out {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let mut all = self.base.clone();
        for (k, v) in labels {
            let _ = write!(all, ",{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(self.text, "{name}{{{all}}} {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.header(name, "histogram", help);
        for (bound, count) in HISTOGRAM_BUCKETS.iter().zip(&h.cumulative) {
            self.sample(
                &format!("{name}_bucket"),
                &[("le", &bound.to_string())],
                count,
            );
        }
        self.sample(&format!("{name}_bucket"), &[("le", "+Inf")], h.count());
        self.sample(&format!("{name}_sum"), &[], h.sum_seconds);
        self.sample(&format!("{name}_count"), &[], h.count());
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every metric of the instance.
pub(crate) fn render(
    identity: &Identity<'_>,
    metrics: &Metrics,
    status: &Status,
    threads: usize,
) -> String {
    let mut out = Out {
        text: String::new(),
        base: format!(
            "application_id=\"{}\",instance_id=\"{}\"",
            escape(identity.application_id),
            escape(identity.instance_id)
        ),
    };
    let m = metrics.snapshot();
    out.counter(
        "eddy_records_in_total",
        "Input records processed.",
        m.records_in,
    );
    out.counter(
        "eddy_records_out_total",
        "Records sent to sink and repartition topics.",
        m.records_out,
    );
    out.counter(
        "eddy_transactions_committed_total",
        "Transactions (or at-least-once batches) committed.",
        m.commits,
    );
    out.counter(
        "eddy_transactions_aborted_total",
        "Transactions aborted.",
        m.aborts,
    );
    out.counter(
        "eddy_records_skipped_total",
        "Input records skipped by a skip handler (undecodable, or processing failed).",
        m.skipped,
    );
    out.counter(
        "eddy_records_dead_lettered_total",
        "Input records sent to the dead-letter topic.",
        m.dead_lettered,
    );
    out.counter(
        "eddy_processing_errors_total",
        "Input records whose processing failed or panicked; each aborted its transaction.",
        m.processing_errors,
    );
    out.counter(
        "eddy_thread_restarts_total",
        "Times a stream thread started over with a new consumer and producer.",
        m.restarts,
    );
    out.counter(
        "eddy_restore_records_total",
        "Changelog records replayed into stores.",
        m.restored,
    );
    out.counter(
        "eddy_offset_settle_waits_total",
        "Tasks that waited for a previous owner's open transaction before reading their committed offset.",
        m.settle_waits,
    );
    out.counter(
        "eddy_input_rewind_skips_total",
        "Input records skipped because the consumer delivered them again after their task took them.",
        m.rewind_skips,
    );
    out.counter(
        "eddy_offset_moved_during_restore_total",
        "Thread start-overs because a restored task's committed input offset was moved by another member while it restored.",
        m.moved_offsets,
    );
    out.counter(
        "eddy_state_ahead_of_offsets_total",
        "Restored inputs resumed where their state stood, past a committed offset the group coordinator lost.",
        m.state_ahead,
    );
    out.counter(
        "eddy_savepoints_applied_total",
        "Savepoints this instance applied to the app at start.",
        m.savepoints_applied,
    );
    out.counter(
        "eddy_external_resolved_commits_total",
        "Prepared transactions of two-phase sinks left behind and committed by a resolution pass.",
        m.external_commits_resolved,
    );
    out.counter(
        "eddy_external_resolved_rollbacks_total",
        "Prepared transactions of two-phase sinks left behind and rolled back by a resolution pass.",
        m.external_rollbacks_resolved,
    );
    out.header(
        "eddy_external_oldest_prepared_seconds",
        "gauge",
        "Age of the app's oldest prepared transaction in its two-phase sinks (0: none); prepared transactions hold locks.",
    );
    out.sample(
        "eddy_external_oldest_prepared_seconds",
        &[],
        m.external_oldest_prepared_ms as f64 / 1000.0,
    );
    out.header(
        "eddy_task_starts_total",
        "counter",
        "Tasks opened, by where their stores' starting state came from.",
    );
    for source in crate::shared::StateSource::ALL {
        out.sample(
            "eddy_task_starts_total",
            &[("source", source.as_str())],
            m.task_starts(source),
        );
    }
    out.header(
        "eddy_late_records_total",
        "counter",
        "Records that came after their window closed (beyond grace), by task and operator.",
    );
    let operators = metrics.operator_counts();
    for (task, operator, late, _) in &operators {
        out.sample(
            "eddy_late_records_total",
            &[("task", task.as_str()), ("operator", operator.as_str())],
            *late,
        );
    }
    out.header(
        "eddy_idle_advances_total",
        "counter",
        "Times a windowed operator's idle-input policy advanced its time from the wall clock, by task and operator.",
    );
    for (task, operator, _, idle) in &operators {
        out.sample(
            "eddy_idle_advances_total",
            &[("task", task.as_str()), ("operator", operator.as_str())],
            *idle,
        );
    }
    let memory = metrics.memory.read();
    out.header(
        "eddy_memory_bytes",
        "gauge",
        "The instance's memory by part: resident (the process's resident set), resident_peak, rocksdb_block_cache, rocksdb_write_buffers, kafka_fetch_queues (records fetched, not yet processed), rest (resident minus the parts).",
    );
    for (part, bytes) in [
        ("resident", memory.resident),
        ("resident_peak", memory.resident_peak),
        ("rocksdb_block_cache", memory.rocksdb_block_cache),
        ("rocksdb_write_buffers", memory.rocksdb_write_buffers),
        ("kafka_fetch_queues", memory.kafka_fetch_queues),
        ("rest", memory.rest()),
    ] {
        out.sample("eddy_memory_bytes", &[("part", part)], bytes);
    }
    out.histogram(
        "eddy_processing_latency_seconds",
        "Time to process one input record.",
        &metrics.processing.snapshot(),
    );
    out.histogram(
        "eddy_commit_latency_seconds",
        "Time to commit one transaction.",
        &metrics.commit.snapshot(),
    );
    let report = status.threads();
    let tasks: Vec<_> = report.values().flat_map(|t| t.tasks.iter()).collect();
    out.header(
        "eddy_ready",
        "gauge",
        "1 when every task of the instance runs.",
    );
    out.sample("eddy_ready", &[], u8::from(status.ready(threads)));
    out.header("eddy_tasks", "gauge", "Tasks of the instance by state.");
    for state in crate::shared::TaskState::ALL {
        let n = tasks.iter().filter(|t| t.state == state).count();
        out.sample("eddy_tasks", &[("state", state.as_str())], n);
    }
    out.header(
        "eddy_consumer_lag_records",
        "gauge",
        "Committed input records not yet processed (last stable offset minus position).",
    );
    for t in &tasks {
        if let Some(lag) = t.lag {
            let partition = t.partition.to_string();
            out.sample(
                "eddy_consumer_lag_records",
                &[("topic", &t.topic), ("partition", &partition)],
                lag,
            );
        }
    }
    out.header(
        "eddy_restore_remaining_records",
        "gauge",
        "Changelog records a restoring task still has to replay.",
    );
    for t in &tasks {
        out.sample(
            "eddy_restore_remaining_records",
            &[("task", &t.task)],
            t.restore_remaining,
        );
    }
    out.header(
        "eddy_rocksdb_memory_bytes",
        "gauge",
        "Memory held by a task's RocksDB stores (memtables, table readers, block cache).",
    );
    for t in &tasks {
        if let Some(bytes) = t.rocksdb_memory_bytes {
            out.sample("eddy_rocksdb_memory_bytes", &[("task", &t.task)], bytes);
        }
    }
    let standbys = status.standbys();
    out.header(
        "eddy_standby_tasks",
        "gauge",
        "Standby copies of other instances' tasks kept here.",
    );
    out.sample("eddy_standby_tasks", &[], standbys.len());
    out.header(
        "eddy_standby_lag_records",
        "gauge",
        "Changelog records a standby copy is behind.",
    );
    for s in &standbys {
        out.sample("eddy_standby_lag_records", &[("task", &s.task)], s.lag);
    }
    out.text
}
