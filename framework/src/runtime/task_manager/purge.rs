//! Deleting the records of repartition topics that their reading tasks have committed past,
//! so repartition topics can keep records without a time limit and still stay small.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::KafkaSettings;

type Pending = Pin<Box<dyn Future<Output = KafkaResult<TopicPartitionList>> + Send>>;

/// Purges one stream thread's repartition inputs up to their committed offsets, at most once
/// per interval, without waiting for the brokers' answers.
pub(super) struct Purger {
    interval: Duration,
    admin: Option<AdminClient<DefaultClientContext>>,
    /// Next offset to read per repartition partition, as last committed.
    committed: HashMap<(String, i32), i64>,
    /// What the last request asked for per partition.
    requested: HashMap<(String, i32), i64>,
    last: Instant,
    pending: Option<Pending>,
}

impl Purger {
    pub(super) fn new(interval: Duration) -> Self {
        Purger {
            interval,
            admin: None,
            committed: HashMap::new(),
            requested: HashMap::new(),
            last: Instant::now(),
            pending: None,
        }
    }

    /// Notes that `topic` [`partition`] committed up to `next` (the next offset to read).
    pub(super) fn committed(&mut self, topic: &str, partition: i32, next: i64) {
        self.committed.insert((topic.to_owned(), partition), next);
    }

    /// Asks the brokers to delete what was committed since the last request, when the
    /// interval has passed; reports how the previous request went.
    pub(super) fn step(&mut self, settings: &KafkaSettings) {
        if self.interval.is_zero() || self.last.elapsed() < self.interval {
            return;
        }
        self.last = Instant::now();
        if let Some(pending) = self.pending.as_mut() {
            match pending.now_or_never() {
                None => return, // still under way
                Some(Ok(result)) => {
                    for e in result.elements() {
                        if let Err(err) = e.error() {
                            tracing::warn!(topic = e.topic(), partition = e.partition(), error = %err, "purging a repartition topic failed");
                        }
                    }
                }
                Some(Err(err)) => tracing::warn!(error = %err, "purging repartition topics failed"),
            }
            self.pending = None;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), &next) in &self.committed {
            let key = (topic.clone(), *partition);
            if self.requested.get(&key).is_some_and(|&r| r >= next) {
                continue;
            }
            if tpl
                .add_partition_offset(topic, *partition, Offset::Offset(next))
                .is_ok()
            {
                self.requested.insert(key, next);
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if self.admin.is_none() {
            match settings.client_config("eddy-purge").create() {
                Ok(admin) => self.admin = Some(admin),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create the purge client");
                    return;
                }
            }
        }
        if let Some(admin) = &self.admin {
            let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
            self.pending = Some(Box::pin(admin.delete_records(&tpl, &options)));
            tracing::debug!(
                partitions = tpl.count(),
                "purging committed repartition records"
            );
        }
    }
}
