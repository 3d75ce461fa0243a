//! Consumer moves: where inputs resume, applied in one request per loop step and retried
//! while librdkafka refuses them.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::TaskManager;

/// How soon a refused seek is tried again.
const RETRY: Duration = Duration::from_millis(100);
/// How long a seek may stay refused before the thread starts over with a new consumer.
const GIVE_UP: Duration = Duration::from_secs(10);

/// A move of the consumer's position in one input partition, applied at the next loop step.
#[derive(Debug, Clone)]
pub(super) struct Seek {
    /// The input topic.
    pub topic: String,
    /// The task's partition of it.
    pub partition: i32,
    /// Where the input resumes.
    pub offset: i64,
    /// True when the consumer may stand past `offset` (the task replaced one rewound in
    /// place): the seek must succeed at once, or records in between would never come.
    pub required: bool,
    /// When librdkafka first refused it.
    pub refused_since: Option<Instant>,
}

impl Seek {
    /// A seek of `topic` [`partition`] to `offset`.
    pub(super) fn to(topic: &str, partition: i32, offset: i64, required: bool) -> Self {
        Seek {
            topic: topic.to_owned(),
            partition,
            offset,
            required,
            refused_since: None,
        }
    }
}

impl TaskManager {
    /// Moves the consumer of tasks that started too early, or just started, to where they
    /// start, all partitions in one request (a seek waits for librdkafka's main thread: one
    /// call per partition made the tasks of a restarted instance wait in turn).
    ///
    /// librdkafka refuses a seek of a partition whose fetching has not started yet (`State`:
    /// its committed offset still being fetched after an assignment). A partition whose
    /// seek was refused that way once stayed silent for five minutes in the savepoint
    /// rollback test while its task ran, so a refused seek is tried again every 100 ms while
    /// its task runs, and one still refused after 10 s starts the thread over with a new
    /// consumer. A required seek that fails starts it over at once.
    pub(crate) fn apply_seeks<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        if self.seeks.is_empty() || self.seek_retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        self.seek_retry_at = None;
        let seeks: Vec<Seek> = std::mem::take(&mut self.seeks)
            .into_iter()
            .filter(|s| self.runs(&s.topic, s.partition))
            .collect();
        if seeks.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for s in &seeks {
            if let Err(e) =
                tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(s.offset))
            {
                tracing::warn!(topic = s.topic, partition = s.partition, offset = s.offset, error = %e, "seek not possible");
            }
        }
        let asked = Instant::now();
        let refused: Vec<(Seek, String)> =
            match consumer.seek_partitions(tpl, Duration::from_secs(1)) {
                Ok(result) => result
                    .elements()
                    .iter()
                    .filter_map(|entry| {
                        let error = entry.error().err()?;
                        let seek = seeks.iter().find(|s| {
                            s.topic == entry.topic() && s.partition == entry.partition()
                        })?;
                        Some((seek.clone(), error.to_string()))
                    })
                    .collect(),
                Err(e) => seeks.iter().map(|s| (s.clone(), e.to_string())).collect(),
            };
        tracing::debug!(thread = self.thread, took = ?asked.elapsed(), "seeks applied");
        let now = Instant::now();
        for (mut seek, error) in refused {
            let what = format!("{} [{}] to {}", seek.topic, seek.partition, seek.offset);
            if seek.required {
                // The consumer stands past the committed offset: the records in between
                // would never come.
                self.reset_dirty(&format!(
                    "a rewound task's input could not be moved back to its committed offset ({what}: {error})"
                ));
                return;
            }
            let since = *seek.refused_since.get_or_insert(now);
            if since == now {
                tracing::warn!(
                    thread = self.thread,
                    seek = what,
                    error,
                    "seek refused; trying again"
                );
            }
            if now.saturating_duration_since(since) >= GIVE_UP {
                self.reset_dirty(&format!(
                    "the consumer refused to move {what} for {GIVE_UP:?}: {error}"
                ));
                return;
            }
            self.seeks.push(seek);
        }
        if !self.seeks.is_empty() {
            self.seek_retry_at = Some(now + RETRY);
        }
    }

    /// True while a running task reads `topic` [`partition`].
    fn runs(&self, topic: &str, partition: i32) -> bool {
        self.shared
            .plan
            .task_id(topic, partition)
            .and_then(|id| self.tasks.get(&id))
            .is_some_and(|t| t.phase.is_running() && t.inputs.iter().any(|i| i.topic == topic))
    }
}
