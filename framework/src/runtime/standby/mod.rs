//! Standby replicas: each instance keeps copies of tasks other instances run, fed from their
//! changelogs, so a task that moves here restores only the last records.
//!
//! Placement needs no custom assignor: every instance reads the group's assignment from the
//! coordinator and applies the same rule. For a stateful task owned by instance `O`, the
//! standbys are the `processing.standby_replicas` instances that follow `O` in instance-id
//! order. A standby lives in the task's own state directory, so when the task becomes active
//! here the stream thread takes the directory over (the standby closes it first) and restores
//! from the standby's changelog position.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

mod warmup;

use super::restore::read_batch;
use super::shared_state::Shared;
use super::standbys::StandbyTask;
use super::task_base::open_stores;
use super::RuntimeError;
use crate::kafka::{describe_group, GroupView};
use crate::shared::StandbyStatus;
use crate::state::{StoreBuilder, StoreKind};
use crate::task::TaskId;

/// How often the placement is computed again.
const PLAN_INTERVAL: Duration = Duration::from_secs(2);

/// The stores of sub-topology `sub` a standby keeps: changelogged RocksDB stores.
fn standby_defs(shared: &Shared, sub: u32) -> Vec<StoreBuilder> {
    shared
        .topology
        .sub_topologies()
        .iter()
        .find(|s| s.id == sub)
        .map(|s| {
            s.stores
                .iter()
                .filter_map(|name| shared.topology.stores.get(name))
                .filter(|d| d.kind == StoreKind::RocksDb && d.changelog)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The tasks this instance (`me`) should keep standbys of under `view`.
fn placement(shared: &Shared, view: &GroupView, me: &str, replicas: usize) -> BTreeSet<TaskId> {
    let instances: Vec<&String> = view.instances.keys().collect();
    let mut wanted = BTreeSet::new();
    if !instances.iter().any(|i| *i == me) {
        return wanted;
    }
    let source_of: HashMap<u32, &String> = shared
        .plan
        .sources
        .iter()
        .map(|(topic, sub)| (*sub, topic))
        .collect();
    for task in &shared.plan.tasks {
        if standby_defs(shared, task.sub_topology).is_empty() {
            continue;
        }
        let Some(topic) = source_of.get(&task.sub_topology) else {
            continue;
        };
        let Some(owner) = view.owner(topic, task.partition) else {
            continue;
        };
        let Some(at) = instances.iter().position(|i| *i == owner) else {
            continue;
        };
        let holders = (1..instances.len())
            .map(|k| instances[(at + k) % instances.len()])
            .take(replicas);
        if holders.into_iter().any(|i| i == me) {
            wanted.insert(*task);
        }
    }
    wanted
}

/// Starts the standby thread of the instance; with `warmed`, it first warms up every
/// stateful task (see [`warmup`]) and reports on `warmed` when done.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    shutdown: Arc<AtomicBool>,
    warmed: Option<std::sync::mpsc::Sender<()>>,
) -> Result<JoinHandle<()>, RuntimeError> {
    let kafka = |what: &str| {
        let what = what.to_owned();
        move |source| RuntimeError::Kafka { what, source }
    };
    let app = &shared.config.application.id;
    let me = shared.instance.instance_id().to_owned();
    let admin: BaseConsumer = shared
        .config
        .kafka
        .client_config(&format!("{app}-{me}-standby-admin"))
        .create()
        .map_err(kafka("creating the standby admin client"))?;
    let mut config = shared
        .config
        .kafka
        .consumer_config_with(&format!("{app}-{me}-standby"), &[]);
    // Never joined or committed to; librdkafka needs a group id to report positions.
    config
        .set("group.id", format!("{app}-{me}-standby"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    let reader: BaseConsumer = config
        .create()
        .map_err(kafka("creating the standby changelog reader"))?;
    std::thread::Builder::new()
        .name("eddy-standby".to_owned())
        .spawn(move || {
            let _span = tracing::info_span!("standby").entered();
            let mut runner = Runner {
                shared,
                me,
                admin,
                reader,
                assigned: BTreeSet::new(),
                last_plan: None,
            };
            if let Some(warmed) = warmed {
                runner.warm_up(&shutdown);
                let _ = warmed.send(());
            }
            while !shutdown.load(Ordering::Relaxed) {
                if let Err(e) = runner.step() {
                    // Standbys only save restore time: log and keep going.
                    tracing::warn!(error = %e, "standby step failed");
                    crate::backoff::pause_unless(&shutdown, Duration::from_millis(500));
                }
            }
            runner.shared.standbys.with(|inner| inner.tasks.clear());
        })
        .map_err(|source| RuntimeError::Spawn {
            what: "standby",
            source,
        })
}

struct Runner {
    shared: Arc<Shared>,
    me: String,
    admin: BaseConsumer,
    reader: BaseConsumer,
    /// Changelog partitions the reader is assigned.
    assigned: BTreeSet<(String, i32)>,
    last_plan: Option<Instant>,
}

impl Runner {
    fn step(&mut self) -> Result<(), RuntimeError> {
        if self
            .last_plan
            .is_none_or(|at| at.elapsed() >= PLAN_INTERVAL)
        {
            self.last_plan = Some(Instant::now());
            self.reconcile()?;
        }
        if self.assigned.is_empty() {
            crate::backoff::idle(Duration::from_millis(100)); // nothing to read until the next plan
            return Ok(());
        }
        self.read(Duration::from_millis(100))
    }

    fn reconcile(&mut self) -> Result<(), RuntimeError> {
        let shared = Arc::clone(&self.shared);
        let app = &shared.config.application.id;
        let view = describe_group(&self.admin, app, Duration::from_secs(5)).map_err(|source| {
            RuntimeError::Kafka {
                what: format!("describing consumer group `{app}`"),
                source,
            }
        })?;
        let wanted = placement(
            &shared,
            &view,
            &self.me,
            shared.config.processing.standby_replicas,
        );
        let (stale, missing): (Vec<TaskId>, Vec<TaskId>) = shared.standbys.with(|inner| {
            let stale = inner
                .tasks
                .keys()
                .filter(|id| !wanted.contains(id))
                .copied()
                .collect();
            let missing = wanted
                .iter()
                .filter(|id| !inner.tasks.contains_key(id) && !inner.active.contains(id))
                .copied()
                .collect();
            (stale, missing)
        });
        shared.standbys.with(|inner| {
            for id in &stale {
                inner.tasks.remove(id);
                inner.dropped.insert(*id);
                tracing::info!(task = %id, "standby dropped");
            }
        });
        self.open(&missing)?;
        self.reassign()?;
        self.publish()
    }

    /// Opens standbys of `ids` (loading checkpoints where the local state is missing or from
    /// another timeline), unless they became active here meanwhile.
    fn open(&mut self, ids: &[TaskId]) -> Result<(), RuntimeError> {
        let shared = Arc::clone(&self.shared);
        for &id in ids {
            let defs = standby_defs(&shared, id.sub_topology);
            // Opening may load a checkpoint: done without holding the registry.
            let (stores, _) = open_stores(&shared, id, &defs)?;
            let changelogs = stores
                .changelogged()
                .into_iter()
                .filter(|(store, _)| defs.iter().any(|d| d.name() == store))
                .collect();
            let added = shared.standbys.with(|inner| {
                if inner.active.contains(&id) {
                    return false; // became active meanwhile: the stream thread takes it
                }
                inner.dropped.remove(&id);
                inner.tasks.insert(id, StandbyTask { stores, changelogs });
                true
            });
            if added {
                tracing::info!(task = %id, "standby started");
            }
        }
        Ok(())
    }

    /// Assigns the changelog partitions of every standby, each from its stored position.
    fn reassign(&mut self) -> Result<(), RuntimeError> {
        let mut wanted = BTreeMap::new();
        self.shared.standbys.with(|inner| {
            for (id, task) in &inner.tasks {
                for (store, topic) in &task.changelogs {
                    let position = task.stores.changelog_position(store).ok().flatten();
                    wanted.insert((topic.clone(), id.partition), position);
                }
            }
        });
        let keys: BTreeSet<(String, i32)> = wanted.keys().cloned().collect();
        if keys == self.assigned {
            return Ok(());
        }
        // Partitions already being read keep their position; new ones start at the store's.
        let current = self.reader.position().ok();
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), stored) in &wanted {
            let reading = current
                .as_ref()
                .and_then(|p| crate::kafka::offset_in(p, topic, *partition))
                .filter(|_| self.assigned.contains(&(topic.clone(), *partition)));
            let offset = reading
                .or(*stored)
                .map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(topic, *partition, offset)
                .map_err(|source| RuntimeError::Kafka {
                    what: "building the standby assignment".to_owned(),
                    source,
                })?;
        }
        self.reader
            .assign(&tpl)
            .map_err(|source| RuntimeError::Kafka {
                what: "assigning standby changelogs".to_owned(),
                source,
            })?;
        self.assigned = keys;
        Ok(())
    }

    /// Reads changelog records for up to `budget` and applies them to the standbys.
    fn read(&mut self, budget: Duration) -> Result<(), RuntimeError> {
        let (buffered, _) =
            read_batch(&self.reader, budget, |_| false).map_err(|source| RuntimeError::Kafka {
                what: "reading a changelog for a standby".to_owned(),
                source,
            })?;
        if buffered.is_empty() {
            return Ok(());
        }
        self.shared.standbys.with(|inner| {
            for ((topic, partition), (records, next, _)) in buffered {
                let task = inner.tasks.iter_mut().find(|(id, t)| {
                    id.partition == partition && t.changelogs.iter().any(|(_, c)| *c == topic)
                });
                let Some((id, task)) = task else {
                    continue; // handed over meanwhile
                };
                let Some((store, _)) = task.changelogs.iter().find(|(_, c)| *c == topic) else {
                    continue;
                };
                if let Err(e) = task.stores.apply_restored(&store.clone(), records, next) {
                    tracing::warn!(task = %id, error = %e, "standby could not apply changelog records");
                }
            }
        });
        Ok(())
    }

    /// Reports each standby's distance from its changelogs' ends.
    fn publish(&self) -> Result<(), RuntimeError> {
        let report = self
            .lags()?
            .into_iter()
            .map(|(id, lag)| StandbyStatus {
                task: id.to_string(),
                lag,
            })
            .collect();
        self.shared.status.set_standbys(report);
        Ok(())
    }

    /// Changelog records each standby is behind the changelogs' ends.
    fn lags(&self) -> Result<BTreeMap<TaskId, i64>, RuntimeError> {
        let mut lag: BTreeMap<TaskId, i64> = BTreeMap::new();
        for ((id, _), reach) in self.reaches()? {
            *lag.entry(id).or_default() += reach.lag();
        }
        Ok(lag)
    }

    /// Where each standby's copy of each changelog is and where that changelog ends.
    fn reaches(&self) -> Result<BTreeMap<(TaskId, String), Reach>, RuntimeError> {
        let positions: Vec<(TaskId, String, i64)> = self.shared.standbys.with(|inner| {
            inner
                .tasks
                .iter()
                .flat_map(|(id, t)| {
                    t.changelogs.iter().map(move |(store, topic)| {
                        let at = t
                            .stores
                            .changelog_position(store)
                            .ok()
                            .flatten()
                            .unwrap_or(0);
                        (*id, topic.clone(), at)
                    })
                })
                .collect()
        });
        // The reader's position moves past transaction markers; the stored one does not.
        let reading = self.reader.position().ok();
        let mut reaches = BTreeMap::new();
        for (id, topic, stored) in positions {
            let at = reading
                .as_ref()
                .and_then(|p| p.find_partition(&topic, id.partition))
                .and_then(|e| e.offset().to_raw())
                .filter(|&o| o >= stored)
                .unwrap_or(stored);
            let (_, end) = crate::kafka::watermarks(
                &self.reader,
                &topic,
                id.partition,
                Duration::from_secs(5),
            )
            .map_err(|source| RuntimeError::Kafka {
                what: format!("reading the end of `{topic}` [{}]", id.partition),
                source,
            })?;
            reaches.insert((id, topic), Reach { at, end });
        }
        Ok(reaches)
    }
}

/// A standby copy's position in one changelog partition and that partition's end (its last
/// stable offset: what a read_committed reader can reach).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reach {
    at: i64,
    end: i64,
}

impl Reach {
    /// Changelog records the copy is behind.
    fn lag(self) -> i64 {
        (self.end - self.at).max(0)
    }
}
