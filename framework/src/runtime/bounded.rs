//! Bounded runs (`processing.mode = bounded`): the input ends every instance of the app reads
//! up to, agreed on the control topic, which tasks have finished, and the end of the run.
//!
//! The first instance to start a run proposes the ends (each source partition's end, or its
//! first offset at `processing.bounded_until_ms`) on the control topic; every instance follows
//! the first proposal after the last finished run, so instances started at different times
//! read up to the same offsets, and a run interrupted by kill -9 is resumed, not restarted.
//! A task is done once it has read its inputs to their ends, told its processors that input
//! ended (windows close) and committed; it then says so on the control topic. Repartition
//! topics end when every task of the sub-topologies before them is done. When every task of
//! the app is done, every instance shuts down cleanly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{Plan, RuntimeError};
use crate::config::EddyConfig;
use crate::record::wall_clock_ms;
use crate::snapshot::{ControlChannel, ControlMessage};
use crate::task::TaskId;

/// How long reading the control topic to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The bounded run this instance takes part in.
#[derive(Debug)]
pub(crate) struct BoundedRun {
    id: String,
    /// Per source topic, per partition: the offset reading stops at (exclusive).
    ends: BTreeMap<String, Vec<i64>>,
    /// Every task of the app, by name.
    all: BTreeMap<String, TaskId>,
    done: Mutex<BTreeSet<TaskId>>,
}

impl BoundedRun {
    /// Run `id` reading up to `ends`, among tasks `all`, with the tasks named in `done`
    /// finished.
    fn new(
        id: String,
        ends: BTreeMap<String, Vec<i64>>,
        all: BTreeMap<String, TaskId>,
        done: &BTreeSet<String>,
    ) -> Arc<Self> {
        let done = done.iter().filter_map(|t| all.get(t).copied()).collect();
        Arc::new(BoundedRun {
            id,
            ends,
            all,
            done: Mutex::new(done),
        })
    }

    /// The run's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Where the run stops reading `topic` [`partition`], when it is a source topic of the
    /// app (internal topics end with the tasks that write them).
    pub(crate) fn end(&self, topic: &str, partition: i32) -> Option<i64> {
        let partition = usize::try_from(partition).ok()?;
        self.ends.get(topic)?.get(partition).copied()
    }

    /// True when `task` finished in this run (here or on another instance).
    pub(crate) fn is_done(&self, task: TaskId) -> bool {
        self.lock().contains(&task)
    }

    /// Notes that `task` finished.
    pub(crate) fn note_done(&self, task: TaskId) {
        self.lock().insert(task);
    }

    /// True when every task of the app finished.
    pub(crate) fn finished(&self) -> bool {
        let done = self.lock();
        self.all.values().all(|t| done.contains(t))
    }

    /// True when every task of the sub-topologies shallower than `depth` finished: the
    /// repartition topics they write get nothing more.
    pub(crate) fn upstream_done(&self, plan: &Plan, depth: u32) -> bool {
        let done = self.lock();
        self.all
            .values()
            .filter(|t| plan.depth.get(&t.sub_topology).copied().unwrap_or(0) < depth)
            .all(|t| done.contains(t))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<TaskId>> {
        self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a control message: a task of this run that finished.
    fn note(&self, message: &ControlMessage) {
        if let ControlMessage::BoundedTaskDone { run, task } = message {
            if *run == self.id {
                if let Some(&id) = self.all.get(task) {
                    self.note_done(id);
                }
            }
        }
    }
}

/// A run's ends and finished tasks, as read from the control topic.
type RunRecord = (BTreeMap<String, Vec<i64>>, BTreeSet<String>);

/// A run read from the control topic: its id, ends and finished tasks.
type OpenRun = (String, BTreeMap<String, Vec<i64>>, BTreeSet<String>);

/// The run in progress after `history`: the first proposal after the last run all of whose
/// tasks (`all`) finished, with its ends and finished tasks.
fn open_run(history: &[ControlMessage], all: &BTreeMap<String, TaskId>) -> Option<OpenRun> {
    let mut open: Option<OpenRun> = None;
    for message in history {
        match message {
            ControlMessage::BoundedRun { run, ends, .. } if open.is_none() => {
                open = Some((run.clone(), ends.clone(), BTreeSet::new()));
            }
            ControlMessage::BoundedTaskDone { run, task } => {
                let finished = match &mut open {
                    Some((id, _, done)) if id == run => {
                        done.insert(task.clone());
                        all.keys().all(|t| done.contains(t))
                    }
                    _ => false,
                };
                if finished {
                    open = None;
                }
            }
            _ => {}
        }
    }
    open
}

/// The ends and finished tasks of run `id` in `history`, when it was proposed there.
fn run_in(history: &[ControlMessage], id: &str) -> Option<RunRecord> {
    let mut found: Option<RunRecord> = None;
    for message in history {
        match message {
            ControlMessage::BoundedRun { run, ends, .. } if run == id && found.is_none() => {
                found = Some((ends.clone(), BTreeSet::new()));
            }
            ControlMessage::BoundedTaskDone { run, task } if run == id => {
                if let Some((_, done)) = &mut found {
                    done.insert(task.clone());
                }
            }
            _ => {}
        }
    }
    found
}

/// The file in the instance's directory naming the bounded run it took part in last.
const RUN_FILE: &str = "bounded-run";

/// Joins the bounded run in progress, or proposes one when there is none, and returns it
/// with the control channel positioned after what was read. An instance whose last run
/// (named in its directory) has finished since gets that run back, finished: it has
/// nothing to do (a restart after the run ended does not start another one; a new
/// instance, or one whose directory was cleared, does).
///
/// # Errors
/// The control topic or the inputs' ends cannot be read.
pub(crate) fn establish(
    config: &EddyConfig,
    plan: &Plan,
    instance: &super::instance::InstanceDir,
    until_ms: Option<i64>,
) -> Result<(Arc<BoundedRun>, ControlChannel), RuntimeError> {
    let app = &config.application.id;
    let instance_id = instance.instance_id();
    let channel =
        ControlChannel::open(&config.kafka, app, &format!("{instance_id}-bounded"), true)?;
    let all: BTreeMap<String, TaskId> = plan.tasks.iter().map(|t| (t.to_string(), *t)).collect();
    let mut history = channel.read_to_end(READ_TIMEOUT)?;
    let run_file = instance.dir().join(RUN_FILE);
    let mut open = open_run(&history, &all);
    let joined = open.is_some();
    if !joined {
        // No run in progress: this instance's last run (if it finished) leaves it nothing to
        // do; otherwise it proposes the next run.
        let last = std::fs::read_to_string(&run_file).ok();
        let last_finished = last.as_deref().map(str::trim).and_then(|id| {
            let (ends, done) = run_in(&history, id)?;
            all.keys()
                .all(|t| done.contains(t))
                .then(|| (id.to_owned(), ends, done))
        });
        if let Some((id, ends, done)) = last_finished {
            tracing::info!(
                run = id,
                "bounded run: this instance's run has finished; nothing to do"
            );
            return Ok((BoundedRun::new(id, ends, all, &done), channel));
        }
        let ends = input_ends(config, plan, until_ms)?;
        let run = format!("{}-{instance_id}", wall_clock_ms());
        channel.send(
            &ControlMessage::BoundedRun {
                run,
                ends,
                started_ms: wall_clock_ms(),
            },
            Duration::from_secs(10),
        )?;
        history.extend(channel.read_to_end(READ_TIMEOUT)?);
        open = open_run(&history, &all);
    }
    let Some((id, ends, done)) = open else {
        return Err(RuntimeError::Plan(vec![format!(
            "the bounded run proposed on `{}` was not read back",
            crate::snapshot::control_topic(app)
        )]));
    };
    std::fs::write(&run_file, &id).map_err(|source| RuntimeError::StateDir {
        what: "writing",
        path: run_file.display().to_string(),
        source,
    })?;
    let partitions: usize = ends.values().map(Vec::len).sum();
    tracing::info!(
        run = id,
        joined,
        partitions,
        tasks_done = done.len(),
        tasks = all.len(),
        "bounded run: reading the source topics up to the run's ends"
    );
    Ok((BoundedRun::new(id, ends, all, &done), channel))
}

/// The offset each partition of the app's source topics (not its internal ones) ends at:
/// the partition's end now, or its first offset at `until_ms`.
fn input_ends(
    config: &EddyConfig,
    plan: &Plan,
    until_ms: Option<i64>,
) -> Result<BTreeMap<String, Vec<i64>>, RuntimeError> {
    let kafka = |what: String| move |source| RuntimeError::Kafka { what, source };
    let consumer: BaseConsumer = config
        .kafka
        .client_config("eddy-bounded-ends")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(kafka(
            "creating a client to read the inputs' ends".to_owned(),
        ))?;
    let mut ends = BTreeMap::new();
    for topic in plan.sources.keys() {
        if plan.repartition.contains(topic) {
            continue;
        }
        let partitions = plan.partitions.get(topic).copied().unwrap_or(0);
        let mut topic_ends = Vec::new();
        for partition in 0..partitions {
            let (_, end) = crate::kafka::watermarks(&consumer, topic, partition, READ_TIMEOUT)
                .map_err(kafka(format!("reading the end of `{topic}` [{partition}]")))?;
            topic_ends.push(end);
        }
        if let Some(at) = until_ms {
            let mut times = TopicPartitionList::new();
            for partition in 0..partitions {
                times
                    .add_partition_offset(topic, partition, Offset::Offset(at))
                    .map_err(kafka(format!("asking for `{topic}` at {at}")))?;
            }
            let found = consumer
                .offsets_for_times(times, READ_TIMEOUT)
                .map_err(kafka(format!("finding the offsets of `{topic}` at {at}")))?;
            for (partition, end) in topic_ends.iter_mut().enumerate() {
                let partition = i32::try_from(partition).unwrap_or(i32::MAX);
                // No record at or after the time: the partition's end.
                if let Some(offset) = crate::kafka::offset_in(&found, topic, partition) {
                    *end = offset.min(*end);
                }
            }
        }
        ends.insert(topic.clone(), topic_ends);
    }
    Ok(ends)
}

/// Follows the control topic for finished tasks of `run` and shuts the instance down once
/// every task of the app finished.
///
/// # Errors
/// The thread cannot be started.
pub(crate) fn spawn_watcher(
    run: Arc<BoundedRun>,
    channel: ControlChannel,
    shutdown: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, RuntimeError> {
    std::thread::Builder::new()
        .name("eddy-bounded".to_owned())
        .spawn(move || {
            while !shutdown.load(Ordering::Relaxed) {
                if run.finished() {
                    tracing::info!(
                        run = run.id(),
                        "bounded run finished: every task read its input to the end and committed"
                    );
                    shutdown.store(true, Ordering::Relaxed);
                    return;
                }
                match channel.poll(Duration::from_millis(200)) {
                    Ok(Some(message)) => run.note(&message),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the control topic for the bounded run");
                        crate::backoff::pause_unless(&shutdown, Duration::from_secs(1));
                    }
                }
            }
        })
        .map_err(|source| RuntimeError::Spawn {
            what: "bounded run",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(n: i32) -> BTreeMap<String, TaskId> {
        (0..n)
            .map(|p| TaskId {
                sub_topology: 0,
                partition: p,
            })
            .map(|t| (t.to_string(), t))
            .collect()
    }

    fn proposal(run: &str, end: i64) -> ControlMessage {
        ControlMessage::BoundedRun {
            run: run.to_owned(),
            ends: BTreeMap::from([("in".to_owned(), vec![end])]),
            started_ms: 0,
        }
    }

    fn done(run: &str, task: &str) -> ControlMessage {
        ControlMessage::BoundedTaskDone {
            run: run.to_owned(),
            task: task.to_owned(),
        }
    }

    #[test]
    fn the_first_proposal_after_the_last_finished_run_is_the_open_run() {
        let all = tasks(2);
        assert_eq!(open_run(&[], &all), None);
        let racing = [proposal("a", 10), proposal("b", 12), done("a", "0_0")];
        let (id, ends, finished) = open_run(&racing, &all).expect("a run is open");
        assert_eq!(id, "a", "the later proposal lost the race");
        assert_eq!(ends["in"], vec![10]);
        assert_eq!(finished, BTreeSet::from(["0_0".to_owned()]));

        let mut history = racing.to_vec();
        history.push(done("b", "0_1"));
        assert_eq!(
            open_run(&history, &all).map(|r| r.0),
            Some("a".to_owned()),
            "the losing run's records do not count"
        );
        history.push(done("a", "0_1"));
        assert_eq!(open_run(&history, &all), None, "run a finished");
        history.push(proposal("c", 20));
        assert_eq!(open_run(&history, &all).map(|r| r.0), Some("c".to_owned()));
    }

    #[test]
    fn tasks_finish_in_their_run_only() {
        let all = tasks(2);
        let run = BoundedRun {
            id: "a".to_owned(),
            ends: BTreeMap::from([("in".to_owned(), vec![10, 20])]),
            all: all.clone(),
            done: Mutex::default(),
        };
        assert_eq!(run.end("in", 1), Some(20));
        assert_eq!(run.end("in", 2), None);
        assert_eq!(run.end("in-repartition", 0), None);
        run.note(&done("b", "0_0"));
        run.note(&done("a", "9_9"));
        assert!(!run.is_done(all["0_0"]));
        run.note(&done("a", "0_0"));
        assert!(run.is_done(all["0_0"]) && !run.finished());
        run.note(&done("a", "0_1"));
        assert!(run.finished());
    }
}
