//! Who owns which partition: the consumer group's members with their assignments, joined with
//! the ops addresses instances announce on the control topic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use serde::Serialize;

use super::OpsError;
use crate::config::EddyConfig;
use crate::kafka::describe_group;
use crate::snapshot::{ControlChannel, ControlMessage};

/// How long a fetched ownership view is reused.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// One instance of the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The instance id.
    pub instance: String,
    /// Where its ops server answers, when it announced one.
    pub ops_address: Option<String>,
    /// Its stream threads (consumer client ids).
    pub threads: Vec<String>,
    /// The input partitions assigned to it: `(topic, partition)`.
    pub partitions: Vec<(String, i32)>,
}

/// The app's instances and what each owns, as the group coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ownership {
    /// The group's state (`Stable`, `PreparingRebalance`, ...).
    pub group_state: String,
    /// Every instance with a member in the group.
    pub members: Vec<Member>,
}

impl Ownership {
    /// The instance that owns `topic` [`partition`], if one does.
    pub fn owner(&self, topic: &str, partition: i32) -> Option<&Member> {
        self.members.iter().find(|m| {
            m.partitions
                .iter()
                .any(|(t, p)| t == topic && *p == partition)
        })
    }
}

/// Reads the group and the control topic, caching the result briefly.
pub(crate) struct MemberView {
    application_id: String,
    admin: BaseConsumer,
    control: ControlChannel,
    addresses: BTreeMap<String, String>,
    cached: Option<(Instant, Ownership)>,
}

impl MemberView {
    pub(crate) fn new(config: &EddyConfig, instance_id: &str) -> Result<Self, OpsError> {
        let client = format!("{}-{instance_id}-ops", config.application.id);
        let admin = config
            .kafka
            .client_config(&client)
            .create()
            .map_err(|source| OpsError::Kafka {
                what: "creating the ops Kafka client".to_owned(),
                source,
            })?;
        let control = ControlChannel::open(&config.kafka, &config.application.id, &client, true)
            .map_err(OpsError::Snapshot)?;
        Ok(MemberView {
            application_id: config.application.id.clone(),
            admin,
            control,
            addresses: BTreeMap::new(),
            cached: None,
        })
    }

    /// The current ownership view (at most [`FRESH_FOR`] old).
    pub(crate) fn ownership(&mut self) -> Result<Ownership, OpsError> {
        if let Some((at, view)) = &self.cached {
            if at.elapsed() < FRESH_FOR {
                return Ok(view.clone());
            }
        }
        let timeout = Duration::from_secs(5);
        for message in self
            .control
            .read_to_end(timeout)
            .map_err(OpsError::Snapshot)?
        {
            if let ControlMessage::Instance {
                instance,
                ops_address,
                ..
            } = message
            {
                self.addresses.insert(instance, ops_address);
            }
        }
        let group =
            describe_group(&self.admin, &self.application_id, timeout).map_err(|source| {
                OpsError::Kafka {
                    what: format!("describing consumer group `{}`", self.application_id),
                    source,
                }
            })?;
        let view = Ownership {
            group_state: group.state,
            members: group
                .instances
                .into_iter()
                .map(|(instance, owned)| Member {
                    ops_address: self.addresses.get(&instance).cloned(),
                    instance,
                    threads: owned.threads,
                    partitions: owned.partitions,
                })
                .collect(),
        };
        self.cached = Some((Instant::now(), view.clone()));
        Ok(view)
    }
}
