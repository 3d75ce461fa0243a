//! Topic administration: creates the topics an app needs and checks the ones that exist.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::KafkaSettings;
use crate::backoff::Backoff;

/// A topic an app needs, with its partition count and topic configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor; `None` uses the broker's `default.replication.factor`.
    pub replication_factor: Option<i32>,
    /// Topic-level configs (for example `cleanup.policy=compact` for changelogs).
    pub configs: BTreeMap<String, String>,
}

impl TopicSpec {
    /// A topic with `partitions` partitions and broker defaults for everything else.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: None,
            configs: BTreeMap::new(),
        }
    }

    /// Adds a topic-level config.
    #[must_use]
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.configs.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// Why a topic could not be created or used.
#[derive(Debug, thiserror::Error)]
pub enum TopicAdminError {
    /// A Kafka call failed.
    #[error("{what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: KafkaError,
    },
    /// The topic exists with another partition count than the app needs.
    #[error("topic `{topic}` has {actual} partitions but the app needs {expected}")]
    PartitionMismatch {
        /// The topic.
        topic: String,
        /// Partitions the app needs.
        expected: i32,
        /// Partitions the topic has.
        actual: i32,
    },
    /// An existing internal topic has a config that loses data the app relies on (a
    /// changelog that is not compacted deletes state by age).
    #[error("topic `{topic}` has {key}={actual} but the app needs {key}={expected}; fix the topic (kafka-configs --alter) or delete it")]
    ConfigMismatch {
        /// The topic.
        topic: String,
        /// The topic config.
        key: String,
        /// What the app needs.
        expected: String,
        /// What the topic has.
        actual: String,
    },
    /// A topic the app reads does not exist.
    #[error("topic `{topic}` does not exist (create it before starting the app)")]
    Missing {
        /// The topic.
        topic: String,
    },
}

/// What the metadata shows of one topic.
struct TopicShape {
    partitions: i32,
    /// Partitions that have a leader.
    led: i32,
    /// The fewest replicas any partition has.
    fewest_replicas: usize,
    /// Brokers in the cluster.
    brokers: usize,
}

/// Creates and inspects topics.
pub struct TopicAdmin {
    admin: AdminClient<DefaultClientContext>,
    metadata: BaseConsumer,
    timeout: Duration,
}

impl std::fmt::Debug for TopicAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicAdmin").finish_non_exhaustive()
    }
}

impl TopicAdmin {
    /// Connects an admin client.
    ///
    /// # Errors
    /// Fails when the clients cannot be created (bad configuration).
    pub fn new(settings: &KafkaSettings) -> Result<Self, TopicAdminError> {
        let err = |what: &str| {
            let what = what.to_owned();
            move |source| TopicAdminError::Kafka { what, source }
        };
        let config = settings.client_config("eddy-admin");
        Ok(TopicAdmin {
            admin: config.create().map_err(err("creating the admin client"))?,
            metadata: config
                .create()
                .map_err(err("creating the metadata client"))?,
            timeout: Duration::from_secs(30),
        })
    }

    /// The shape of `topic` as the cluster's metadata shows it, or `None` when it does not
    /// exist.
    fn describe(&self, topic: &str) -> Result<Option<TopicShape>, TopicAdminError> {
        let md = self
            .metadata
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|source| TopicAdminError::Kafka {
                what: format!("fetching metadata of topic `{topic}`"),
                source,
            })?;
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let brokers = md.brokers().len();
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| {
                let partitions = t.partitions();
                TopicShape {
                    partitions: count(partitions.len()),
                    led: count(
                        partitions
                            .iter()
                            .filter(|p| p.error().is_none() && p.leader() >= 0)
                            .count(),
                    ),
                    fewest_replicas: partitions
                        .iter()
                        .map(|p| p.replicas().len())
                        .min()
                        .unwrap_or(0),
                    brokers,
                }
            }))
    }

    /// Partition count of `topic`, or `None` when it does not exist.
    ///
    /// # Errors
    /// Fails when the metadata request fails.
    pub fn partitions(&self, topic: &str) -> Result<Option<i32>, TopicAdminError> {
        Ok(self.describe(topic)?.map(|shape| shape.partitions))
    }

    /// Creates every topic that does not exist and checks that existing ones have the
    /// expected partition count.
    ///
    /// # Errors
    /// Fails when a topic cannot be created or exists with another partition count.
    pub fn ensure(&self, specs: &[TopicSpec]) -> Result<(), TopicAdminError> {
        let mut to_create = Vec::new();
        for spec in specs {
            match self.partitions(&spec.name)? {
                Some(actual) if actual != spec.partitions => {
                    return Err(TopicAdminError::PartitionMismatch {
                        topic: spec.name.clone(),
                        expected: spec.partitions,
                        actual,
                    })
                }
                Some(_) => self.check_existing(spec)?,
                None => to_create.push(spec),
            }
        }
        if to_create.is_empty() {
            return Ok(());
        }
        let new_topics: Vec<NewTopic<'_>> = to_create
            .iter()
            .map(|spec| {
                let replication = match spec.replication_factor {
                    Some(rf) => TopicReplication::Fixed(rf),
                    None => TopicReplication::Fixed(-1),
                };
                let mut topic = NewTopic::new(&spec.name, spec.partitions, replication);
                for (k, v) in &spec.configs {
                    topic = topic.set(k, v);
                }
                topic
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = futures::executor::block_on(self.admin.create_topics(&new_topics, &options))
            .map_err(|source| TopicAdminError::Kafka {
                what: "creating topics".to_owned(),
                source,
            })?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(TopicAdminError::Kafka {
                        what: format!("creating topic `{topic}`"),
                        source: KafkaError::AdminOp(code),
                    })
                }
            }
        }
        // Creation is asynchronous on the broker: wait until metadata shows every partition
        // with a leader, so the first read or write of a new topic does not fail.
        let mut attempts = Backoff::fixed(Duration::from_millis(50)).start(self.timeout);
        for spec in to_create {
            while self.describe(&spec.name)?.map(|shape| shape.led) != Some(spec.partitions) {
                if !attempts.wait() {
                    return Err(TopicAdminError::Missing {
                        topic: spec.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The fewest replicas any partition of `topic` has and the number of brokers in the
    /// cluster, or `None` when the topic does not exist.
    ///
    /// # Errors
    /// Fails when the metadata request fails.
    pub fn replication(&self, topic: &str) -> Result<Option<(usize, usize)>, TopicAdminError> {
        Ok(self
            .describe(topic)?
            .map(|shape| (shape.fewest_replicas, shape.brokers)))
    }

    /// The value of topic-level config `key` of `topic` (for example `max.message.bytes`),
    /// or `None` when the broker reports none.
    ///
    /// # Errors
    /// Fails when the configs cannot be described.
    pub fn topic_config(&self, topic: &str, key: &str) -> Result<Option<String>, TopicAdminError> {
        let mut found = self.configs(
            &ResourceSpecifier::Topic(topic),
            &format!("topic `{topic}`"),
            &[key],
        )?;
        Ok(found.remove(key))
    }

    /// The values of `keys` among the configs of `resource` (`what` names it in errors);
    /// a key the broker reports no value for is absent.
    fn configs(
        &self,
        resource: &ResourceSpecifier<'_>,
        what: &str,
        keys: &[&str],
    ) -> Result<BTreeMap<String, String>, TopicAdminError> {
        let err = |source| TopicAdminError::Kafka {
            what: format!("describing the configs of {what}"),
            source,
        };
        let options = AdminOptions::new().request_timeout(Some(self.timeout));
        let results =
            futures::executor::block_on(self.admin.describe_configs([resource], &options))
                .map_err(err)?;
        let mut found = BTreeMap::new();
        for result in results {
            let resource = result.map_err(|code| err(KafkaError::AdminOp(code)))?;
            for key in keys {
                if let Some(value) = resource.get(key).and_then(|e| e.value.clone()) {
                    found.entry((*key).to_owned()).or_insert(value);
                }
            }
        }
        Ok(found)
    }

    /// The values of broker configs `keys` as one broker of the cluster reports them
    /// (defaults included); a key the broker does not know (an older Kafka) is absent.
    ///
    /// # Errors
    /// Fails when the metadata or the configs cannot be read.
    pub fn broker_configs(
        &self,
        keys: &[&str],
    ) -> Result<BTreeMap<String, String>, TopicAdminError> {
        let md = self
            .metadata
            .fetch_metadata(None, self.timeout)
            .map_err(|source| TopicAdminError::Kafka {
                what: "fetching the cluster's brokers".to_owned(),
                source,
            })?;
        let Some(broker) = md
            .brokers()
            .first()
            .map(rdkafka::metadata::MetadataBroker::id)
        else {
            return Ok(BTreeMap::new());
        };
        self.configs(
            &ResourceSpecifier::Broker(broker),
            &format!("broker {broker}"),
            keys,
        )
    }

    /// Checks that an existing topic keeps what `spec` needs kept: a compacted topic (a
    /// changelog, the control topic) must still be compacted.
    fn check_existing(&self, spec: &TopicSpec) -> Result<(), TopicAdminError> {
        let Some(expected) = spec.configs.get("cleanup.policy") else {
            return Ok(());
        };
        if !expected.split(',').any(|p| p.trim() == "compact") {
            return Ok(());
        }
        let actual = self
            .topic_config(&spec.name, "cleanup.policy")?
            .unwrap_or_default();
        if actual.split(',').any(|p| p.trim() == "compact") {
            return Ok(());
        }
        Err(TopicAdminError::ConfigMismatch {
            topic: spec.name.clone(),
            key: "cleanup.policy".to_owned(),
            expected: expected.clone(),
            actual,
        })
    }

    /// Checks that `topic` exists and returns its partition count.
    ///
    /// # Errors
    /// [`TopicAdminError::Missing`] when it does not exist.
    pub fn require(&self, topic: &str) -> Result<i32, TopicAdminError> {
        self.partitions(topic)?
            .ok_or_else(|| TopicAdminError::Missing {
                topic: topic.to_owned(),
            })
    }
}
