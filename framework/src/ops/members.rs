//! Who owns which partition: the consumer group's members with their assignments, joined with
//! the ops addresses instances announce on the control topic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use super::OpsError;
use crate::config::EddyConfig;
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
        let client = format!("{}-{instance_id}-ops", config.application_id);
        let admin = config
            .kafka
            .client_config(&client)
            .create()
            .map_err(|source| OpsError::Kafka {
                what: "creating the ops Kafka client".to_owned(),
                source,
            })?;
        let control = ControlChannel::open(&config.kafka, &config.application_id, &client, true)
            .map_err(OpsError::Snapshot)?;
        Ok(MemberView {
            application_id: config.application_id.clone(),
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
        let groups = self
            .admin
            .fetch_group_list(Some(&self.application_id), timeout)
            .map_err(|source| OpsError::Kafka {
                what: format!("describing consumer group `{}`", self.application_id),
                source,
            })?;
        let mut members: BTreeMap<String, Member> = BTreeMap::new();
        let mut group_state = String::from("Empty");
        for group in groups.groups() {
            group_state = group.state().to_owned();
            for m in group.members() {
                let thread = m.client_id().to_owned();
                // Stream thread client ids are `<instance id>-<thread index>`.
                let instance = thread
                    .rsplit_once('-')
                    .map_or(thread.as_str(), |(i, _)| i)
                    .to_owned();
                let member = members.entry(instance.clone()).or_insert_with(|| Member {
                    ops_address: self.addresses.get(&instance).cloned(),
                    instance,
                    threads: Vec::new(),
                    partitions: Vec::new(),
                });
                member.threads.push(thread);
                if let Some(bytes) = m.assignment() {
                    member
                        .partitions
                        .extend(parse_assignment(bytes).unwrap_or_default());
                }
            }
        }
        for member in members.values_mut() {
            member.partitions.sort();
        }
        let view = Ownership {
            group_state,
            members: members.into_values().collect(),
        };
        self.cached = Some((Instant::now(), view.clone()));
        Ok(view)
    }
}

/// Decodes a consumer protocol assignment: version, then per topic its partitions (user data
/// after them is ignored). `None` when the bytes are cut short.
fn parse_assignment(bytes: &[u8]) -> Option<Vec<(String, i32)>> {
    let mut at = 2; // version (i16)
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let slice = bytes.get(*at..*at + n)?;
        *at += n;
        Some(slice)
    };
    let i32_at =
        |at: &mut usize| -> Option<i32> { Some(i32::from_be_bytes(take(at, 4)?.try_into().ok()?)) };
    let topics = i32_at(&mut at)?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = i16::from_be_bytes(take(&mut at, 2)?.try_into().ok()?);
        let topic =
            String::from_utf8_lossy(take(&mut at, usize::try_from(len).ok()?)?).into_owned();
        let partitions = i32_at(&mut at)?;
        for _ in 0..partitions.max(0) {
            out.push((topic.clone(), i32_at(&mut at)?));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_protocol_assignment_decodes_to_its_partitions() {
        let mut bytes = vec![0, 1]; // version 1
        bytes.extend(2_i32.to_be_bytes()); // two topics
        for (topic, partitions) in [("in", vec![0, 3]), ("app-x-repartition", vec![5])] {
            bytes.extend(i16::try_from(topic.len()).unwrap().to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend(i32::try_from(partitions.len()).unwrap().to_be_bytes());
            for p in partitions {
                bytes.extend(i32::to_be_bytes(p));
            }
        }
        bytes.extend((-1_i32).to_be_bytes()); // no user data
        assert_eq!(
            parse_assignment(&bytes).unwrap(),
            vec![
                ("in".to_owned(), 0),
                ("in".to_owned(), 3),
                ("app-x-repartition".to_owned(), 5)
            ]
        );
        assert_eq!(parse_assignment(&bytes[..9]), None, "cut short");
    }
}
