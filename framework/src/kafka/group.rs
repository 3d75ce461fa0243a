//! The app's consumer group as the coordinator sees it: which instance owns which partitions,
//! decoded from the members' assignments.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
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

    /// True while the group is rebalancing: members joining or syncing (classic protocol),
    /// or the coordinator assigning and members reconciling (consumer protocol, which
    /// librdkafka reports as `Unknown`).
    pub fn rebalancing(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PreparingRebalance" | "CompletingRebalance" | "Unknown"
        )
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

/// Describes consumer group `group` with librdkafka's `DescribeConsumerGroups`, which
/// answers for groups of both protocols (the classic `DescribeGroups` shows no member of a
/// group on the consumer protocol). A group that does not exist is `Empty`.
///
/// # Errors
/// The coordinator does not answer within `timeout`, or refuses.
pub fn describe_group<C: ConsumerContext>(
    client: &BaseConsumer<C>,
    group: &str,
    timeout: Duration,
) -> Result<GroupView, KafkaError> {
    let (state, members) = super::group_describe::members(client, group, timeout)?;
    let mut view = GroupView {
        state: state.unwrap_or_else(|| "Empty".to_owned()),
        instances: BTreeMap::new(),
    };
    for (thread, partitions) in members {
        let instance = thread
            .rsplit_once('-')
            .map_or(thread.as_str(), |(i, _)| i)
            .to_owned();
        let entry = view.instances.entry(instance).or_default();
        entry.threads.push(thread);
        entry.partitions.extend(partitions);
    }
    for a in view.instances.values_mut() {
        a.partitions.sort();
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::ClientConfig;

    use super::describe_group;

    /// A member of a fresh group on `protocol`, polled until it holds both partitions of
    /// `topic`; the describe sees it, with its client id and partitions.
    fn member_is_seen(protocol: &str) -> Result<(), Box<dyn std::error::Error>> {
        let kafka = eddy_testkit::Kafka::shared()?;
        let topic = eddy_testkit::unique_name("describe-group");
        kafka.create_topic(&topic, 2)?;
        let group = eddy_testkit::unique_name("describe-group");
        let mut config: ClientConfig = kafka.config();
        config
            .set("group.id", &group)
            .set("client.id", "instance-7-0")
            .set("group.protocol", protocol);
        let consumer: BaseConsumer = config.create()?;
        consumer.subscribe(&[&topic])?;
        let expected: Vec<(String, i32)> = (0..2).map(|p| (topic.clone(), p)).collect();
        let mut last = None;
        let waited = eddy_testkit::eventually(
            "the member seen with its partitions",
            Duration::from_secs(60),
            || {
                consumer.poll(Duration::from_millis(100));
                // A coordinator still loading (a broker just started) answers with an error.
                let view = describe_group(&consumer, &group, Duration::from_secs(5));
                let seen = view.as_ref().is_ok_and(|v| {
                    v.instances
                        .get("instance-7")
                        .is_some_and(|a| a.threads == ["instance-7-0"] && a.partitions == expected)
                });
                last = Some(view);
                Ok::<bool, Box<dyn std::error::Error>>(seen)
            },
        );
        waited.map_err(|e| format!("{protocol}: {e}; last seen {last:?}"))?;
        Ok(())
    }

    #[test]
    fn a_member_and_its_partitions_are_seen_under_both_group_protocols(
    ) -> Result<(), Box<dyn std::error::Error>> {
        member_is_seen("classic")?;
        // The classic describe call showed no member of a consumer-protocol group.
        member_is_seen("consumer")
    }
}
