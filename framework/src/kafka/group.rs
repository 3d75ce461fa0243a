//! The app's consumer group as the coordinator sees it: which instance owns which partitions,
//! decoded from the members' assignments.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;

/// What one instance of the app holds in the group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceAssignment {
    /// Its stream threads (consumer client ids).
    pub threads: Vec<String>,
    /// Its partitions, `(topic, partition)`, sorted.
    pub partitions: Vec<(String, i32)>,
}

/// The group's state and its instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    /// The coordinator's state name (`Stable`, `PreparingRebalance`, `Empty`, ...).
    pub state: String,
    /// Instance id → what it holds. Stream thread client ids are `<instance id>-<thread>`.
    pub instances: BTreeMap<String, InstanceAssignment>,
}

impl GroupView {
    /// Client ids of every member (stream thread) of the group.
    pub fn threads(&self) -> impl Iterator<Item = &str> {
        self.instances
            .values()
            .flat_map(|a| a.threads.iter().map(String::as_str))
    }

    /// True while the group is rebalancing (members joining or syncing).
    pub fn rebalancing(&self) -> bool {
        self.state == "PreparingRebalance" || self.state == "CompletingRebalance"
    }

    /// The instance owning `topic` [`partition`], if any.
    pub fn owner(&self, topic: &str, partition: i32) -> Option<&str> {
        self.instances.iter().find_map(|(id, a)| {
            a.partitions
                .iter()
                .any(|(t, p)| t == topic && *p == partition)
                .then_some(id.as_str())
        })
    }
}

/// Describes consumer group `group`.
///
/// # Errors
/// The coordinator does not answer within `timeout`.
pub fn describe_group<C: ConsumerContext>(
    client: &BaseConsumer<C>,
    group: &str,
    timeout: Duration,
) -> Result<GroupView, KafkaError> {
    let groups = client.fetch_group_list(Some(group), timeout)?;
    let mut view = GroupView {
        state: "Empty".to_owned(),
        instances: BTreeMap::new(),
    };
    for g in groups.groups() {
        view.state = g.state().to_owned();
        for m in g.members() {
            let thread = m.client_id().to_owned();
            let instance = thread
                .rsplit_once('-')
                .map_or(thread.as_str(), |(i, _)| i)
                .to_owned();
            let entry = view.instances.entry(instance).or_default();
            entry.threads.push(thread);
            if let Some(bytes) = m.assignment() {
                entry
                    .partitions
                    .extend(parse_assignment(bytes).unwrap_or_default());
            }
        }
    }
    for a in view.instances.values_mut() {
        a.partitions.sort();
    }
    Ok(view)
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
