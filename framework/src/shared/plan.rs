//! The topic plan of a running app: which topics it reads, their partition counts, and the
//! internal topics (repartition, changelog) it must create.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::kafka::TopicSpec;
use crate::snapshot::control_topic;
use crate::task::TaskId;
use crate::topology::{changelog_topic, TopicRef, Topology};

/// What a stream thread needs to know about the app's topics.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The topics the app's consumer subscribes to (resolved names).
    pub subscriptions: Vec<String>,
    /// Source topic → the sub-topology that reads it.
    pub sources: HashMap<String, u32>,
    /// Sub-topology → its source topics (resolved), in the topology's order: a task reads
    /// partition N of each.
    pub inputs: BTreeMap<u32, Vec<String>>,
    /// Source topics read as tables (resolved): loaded to their end before a task's other
    /// inputs.
    pub table_inputs: BTreeSet<String>,
    /// Partition count of every topic the app reads or writes.
    pub partitions: BTreeMap<String, i32>,
    /// Internal topics to create, with their configs.
    pub internal: Vec<TopicSpec>,
    /// Every task of the app.
    pub tasks: Vec<TaskId>,
    /// Depth of each sub-topology: 0 when it reads only external topics, else one more than
    /// the deepest sub-topology writing its repartition input.
    pub depth: BTreeMap<u32, u32>,
    /// The app's repartition topics (resolved names).
    pub repartition: BTreeSet<String>,
}

impl Plan {
    /// The task that consumes `partition` of source topic `topic`, if the app reads it.
    pub(crate) fn task_id(&self, topic: &str, partition: i32) -> Option<TaskId> {
        self.sources.get(topic).map(|&sub_topology| TaskId {
            sub_topology,
            partition,
        })
    }

    /// The deepest sub-topology's depth.
    pub(crate) fn levels(&self) -> u32 {
        self.depth.values().copied().max().unwrap_or(0)
    }
}

/// Depth of every sub-topology, from which sub-topologies write which repartition topic.
fn depths(topology: &Topology, writers: &BTreeMap<String, Vec<u32>>) -> BTreeMap<u32, u32> {
    let mut depth: BTreeMap<u32, u32> = BTreeMap::new();
    // Sub-topologies form a DAG; as many passes as there are sub-topologies settle it.
    for _ in 0..=topology.sub_topologies().len() {
        for sub in topology.sub_topologies() {
            let d = sub
                .source_topics
                .iter()
                .filter_map(|t| match t {
                    TopicRef::External(_) => None,
                    TopicRef::Internal(name) => writers
                        .get(name)
                        .into_iter()
                        .flatten()
                        .map(|w| depth.get(w).copied().unwrap_or(0) + 1)
                        .max(),
                })
                .max()
                .unwrap_or(0);
            depth.insert(sub.id, d);
        }
    }
    depth
}

/// Plans topics for `topology` run as `application_id`; `existing` gives the partition count
/// of an external topic, `None` when it does not exist.
///
/// # Errors
/// Every problem found: missing external topics, sub-topologies the runtime cannot run.
pub(crate) fn plan(
    topology: &Topology,
    application_id: &str,
    mut existing: impl FnMut(&str) -> Option<i32>,
) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let mut partitions: BTreeMap<String, i32> = BTreeMap::new();
    let mut external = |topic: &TopicRef, role: &str, problems: &mut Vec<String>| {
        if let TopicRef::External(name) = topic {
            match existing(name) {
                Some(n) => {
                    partitions.insert(name.clone(), n);
                }
                None => problems.push(format!(
                    "{role} topic `{name}` does not exist (create it before starting the app)"
                )),
            }
        }
    };
    for topic in topology.source_topics() {
        external(&topic, "source", &mut problems);
    }
    for topic in topology.sink_topics() {
        external(&topic, "sink", &mut problems);
    }

    // Which sub-topology writes each repartition topic.
    let writers = topology.internal_writers();

    // Partition count of a sub-topology = that of its first source topic whose count is
    // known; a repartition topic takes its configured count, or that of the sub-topology
    // using the store it was declared like, or the largest of its writers'. Resolve until
    // stable.
    let mut sub_partitions: BTreeMap<u32, i32> = BTreeMap::new();
    let mut repartition: BTreeMap<String, i32> = BTreeMap::new();
    for _ in 0..=topology.sub_topologies().len() {
        for sub in topology.sub_topologies() {
            let count = sub.source_topics.iter().find_map(|t| match t {
                TopicRef::External(name) => partitions.get(name).copied(),
                TopicRef::Internal(name) => repartition.get(name).copied(),
            });
            if let Some(count) = count {
                sub_partitions.insert(sub.id, count);
            }
        }
        for (name, configured) in topology.repartition_topics() {
            let like = topology
                .repartition_like
                .get(name)
                .and_then(|store| {
                    topology
                        .sub_topologies()
                        .iter()
                        .find(|s| s.stores.contains(store))
                })
                .and_then(|s| sub_partitions.get(&s.id).copied());
            let derived = writers
                .get(name)
                .into_iter()
                .flatten()
                .filter_map(|w| sub_partitions.get(w).copied())
                .max();
            if let Some(count) = configured.or(like).or(derived) {
                repartition.insert(name.clone(), count);
            }
        }
    }

    // The control topic keeps the last restore record forever: compacted.
    let mut internal =
        vec![TopicSpec::new(control_topic(application_id), 1).config("cleanup.policy", "compact")];
    for (name, count) in &repartition {
        let topic = TopicRef::Internal(name.clone()).resolve(application_id);
        partitions.insert(topic.clone(), *count);
        // Kept until every reading task committed past them, then purged (DeleteRecords):
        // a time limit would drop the records of a lagging downstream sub-topology. Segments
        // roll every 10 minutes so purged records leave the disk.
        internal.push(
            TopicSpec::new(topic, *count)
                .config("cleanup.policy", "delete")
                .config("retention.ms", "-1")
                .config("segment.ms", "600000"),
        );
    }
    // (A missing source topic already explains an underived count.)
    for name in topology.repartition_topics().keys() {
        if problems.is_empty() && !repartition.contains_key(name) {
            problems.push(format!(
                "cannot derive the partition count of repartition topic `{name}`; set it with repartition_partitions"
            ));
        }
    }
    for sub in topology.sub_topologies() {
        let Some(&count) = sub_partitions.get(&sub.id) else {
            continue;
        };
        for store in &sub.stores {
            let Some(def) = topology.stores.get(store).filter(|s| s.changelog) else {
                continue;
            };
            let topic = changelog_topic(application_id, store);
            partitions.insert(topic.clone(), count);
            let spec = def
                .changelog_configs()
                .into_iter()
                .fold(TopicSpec::new(topic, count), |spec, (key, value)| {
                    spec.config(key, &value)
                });
            internal.push(spec);
        }
    }

    let mut sources = HashMap::new();
    let mut inputs: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut subscriptions = Vec::new();
    for sub in topology.sub_topologies() {
        for topic in &sub.source_topics {
            let name = topic.resolve(application_id);
            sources.insert(name.clone(), sub.id);
            inputs.entry(sub.id).or_default().push(name.clone());
            subscriptions.push(name);
        }
        // A task reads partition N of each of its topics: they must be co-partitioned.
        let counts: Vec<(String, i32)> = sub
            .source_topics
            .iter()
            .filter_map(|t| {
                let name = t.resolve(application_id);
                let count = match t {
                    TopicRef::External(n) => partitions.get(n).copied(),
                    TopicRef::Internal(n) => repartition.get(n).copied(),
                }?;
                Some((name, count))
            })
            .collect();
        if let Some((first, n)) = counts.first() {
            for (other, m) in &counts[1..] {
                if m != n {
                    problems.push(format!(
                        "topics `{first}` ({n} partitions) and `{other}` ({m} partitions) are read together (a join or merge) and must have the same number of partitions; repartition one of them"
                    ));
                }
            }
        }
    }
    let tasks = topology
        .sub_topologies()
        .iter()
        .flat_map(|sub| {
            let count = sub_partitions.get(&sub.id).copied().unwrap_or(0);
            (0..count).map(move |partition| TaskId {
                sub_topology: sub.id,
                partition,
            })
        })
        .collect();
    let repartition_names = repartition
        .keys()
        .map(|name| TopicRef::Internal(name.clone()).resolve(application_id))
        .collect();
    if problems.is_empty() {
        Ok(Plan {
            subscriptions,
            sources,
            inputs,
            table_inputs: topology
                .table_topics
                .iter()
                .map(|t| t.resolve(application_id))
                .collect(),
            partitions,
            internal,
            tasks,
            depth: depths(topology, &writers),
            repartition: repartition_names,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::StreamsBuilder;
    use crate::serde::{I64Serde, Nullable, StringSerde, UnitSerde};

    fn wordcount() -> Topology {
        let builder = StreamsBuilder::new();
        builder
            .stream("lines", UnitSerde, StringSerde)
            .flat_map_values(|line: String| {
                line.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .select_key(|_k: &(), w: &String| w.clone())
            .group_by_key(StringSerde, StringSerde)
            .count("counts")
            .to_stream()
            .to("counts-out", StringSerde, Nullable(I64Serde));
        builder.build().unwrap()
    }

    #[test]
    fn internal_topics_follow_their_source_partitions() {
        let topology = wordcount();
        let plan = plan(&topology, "wc", |t| match t {
            "lines" => Some(6),
            "counts-out" => Some(2),
            _ => None,
        })
        .unwrap();
        assert_eq!(plan.subscriptions, vec!["lines", "wc-counts-repartition"]);
        let specs: Vec<(String, i32, String)> = plan
            .internal
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.partitions,
                    s.configs["cleanup.policy"].clone(),
                )
            })
            .collect();
        assert_eq!(
            specs,
            vec![
                ("wc-eddy-control".to_owned(), 1, "compact".to_owned()),
                ("wc-counts-repartition".to_owned(), 6, "delete".to_owned()),
                ("wc-counts-changelog".to_owned(), 6, "compact".to_owned()),
            ]
        );
        assert_eq!(plan.partitions["counts-out"], 2);
        assert_eq!(plan.sources["wc-counts-repartition"], 1);
        assert_eq!(plan.tasks.len(), 12, "6 partitions × 2 sub-topologies");
        assert_eq!(plan.depth, BTreeMap::from([(0, 0), (1, 1)]));
        assert_eq!(plan.levels(), 1);
        assert!(plan.repartition.contains("wc-counts-repartition"));
    }

    #[test]
    fn a_foreign_key_join_sends_subscriptions_like_the_right_table_and_results_like_the_left() {
        let topology = crate::dsl::orders_by_customer();
        let plan = plan(&topology, "fk", |t| match t {
            "orders" => Some(6),
            "customers" => Some(3),
            "out" => Some(2),
            _ => None,
        })
        .unwrap();
        assert_eq!(plan.partitions["fk-joined-fk-subscriptions-repartition"], 3);
        assert_eq!(plan.partitions["fk-joined-fk-results-repartition"], 6);
        assert_eq!(plan.partitions["fk-joined-changelog"], 6);
        assert_eq!(plan.partitions["fk-joined-fk-subscriptions-changelog"], 3);
        let depths: Vec<u32> = plan.depth.values().copied().collect();
        assert_eq!(depths, [0, 1, 2], "left, right, results: no cycle");
    }

    /// `views` joined with `clicks` within ten seconds, written to `out`; with `rekeyed`, the
    /// clicks are keyed by their value (the user) before the join.
    fn views_join_clicks(rekeyed: bool) -> Topology {
        use crate::dsl::{JoinWindows, StreamJoined};
        let builder = StreamsBuilder::new();
        let views = builder.stream("views", StringSerde, StringSerde);
        let mut clicks = builder.stream("clicks", StringSerde, StringSerde);
        if rekeyed {
            clicks = clicks.select_key(|_page: &String, user: &String| user.clone());
        }
        views
            .join_stream(
                &clicks,
                JoinWindows::of(std::time::Duration::from_secs(10)),
                |v: &String, c: &String| format!("{v}/{c}"),
                StreamJoined::new("vc", StringSerde, StringSerde, StringSerde),
            )
            .to("out", StringSerde, StringSerde);
        builder.build().unwrap()
    }

    #[test]
    fn joined_topics_of_different_partition_counts_are_refused_naming_both() {
        let counts = |views: i32| {
            move |t: &str| match t {
                "views" => Some(views),
                "clicks" => Some(6),
                "out" => Some(2),
                _ => None,
            }
        };
        let topology = views_join_clicks(false);
        let problems = plan(&topology, "vc", counts(4)).unwrap_err();
        assert_eq!(
            problems,
            vec![
                "topics `views` (4 partitions) and `clicks` (6 partitions) are read together (a join or merge) and must have the same number of partitions; repartition one of them"
            ]
        );
        let plan = plan(&topology, "vc", counts(6)).unwrap();
        assert_eq!(plan.inputs[&0], vec!["views", "clicks"]);
        assert_eq!(plan.tasks.len(), 6);
    }

    /// Clicks keyed by page, re-keyed by user and joined with views keyed by user: the
    /// re-keyed side goes through a repartition topic with the views' partition count, so the
    /// join reads two co-partitioned topics whatever the clicks topic's count.
    #[test]
    fn a_rekeyed_side_of_a_stream_join_is_repartitioned_like_the_other() {
        let topology = views_join_clicks(true);
        let counts = |t: &str| match t {
            "views" => Some(4),
            "clicks" => Some(6),
            "out" => Some(2),
            _ => None,
        };
        let plan = plan(&topology, "vc", counts).unwrap();
        assert_eq!(plan.partitions["vc-vc-right-repartition"], 4);
        assert!(!plan.partitions.contains_key("vc-vc-left-repartition"));
        let joining: Vec<_> = plan.inputs.values().filter(|i| i.len() == 2).collect();
        assert_eq!(joining, [&vec!["views", "vc-vc-right-repartition"]]);
    }

    #[test]
    fn missing_external_topics_are_all_named() {
        let problems = plan(&wordcount(), "wc", |_| None).unwrap_err();
        assert_eq!(
            problems,
            vec![
                "source topic `lines` does not exist (create it before starting the app)",
                "sink topic `counts-out` does not exist (create it before starting the app)",
            ]
        );
    }
}
