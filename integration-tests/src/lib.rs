//! Eddy tests against a real Apache Kafka broker: the test files are in `tests/`, the broker
//! helpers in the `eddy-testkit` crate, and here the app-process harness and the word-count
//! exactness check the tests share; [`ops`] calls an instance's ops HTTP server and
//! [`otlp`] receives its OpenTelemetry exports.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub mod demo;
pub mod departures;
pub mod load;
pub mod ops;
pub mod otlp;
pub mod progress;
pub mod rescale;
mod snapshots;
mod test_app;

pub use eddy_testkit::pace;
pub use snapshots::{borrowed, create_savepoint, SnapshotTarget};
pub use test_app::TestAppArgs;

use anyhow::{anyhow, bail, Context};
use eddy_testkit::{ReadRecord, TestkitError};

/// Path of a binary built by this workspace (`cargo build --workspace` puts it next to the
/// test executables' `deps` directory).
///
/// # Errors
/// Fails when the binary has not been built.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // Test executables live in `<profile>/deps`, binaries in `<profile>`.
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "binary `{name}` is missing (looked at {candidates:?}); build it first with `cargo build --workspace` (make test does)"
            )
        })
}

/// How to start one wordcount instance.
#[derive(Debug, Clone)]
pub struct WordcountSpec {
    /// Kafka bootstrap servers.
    pub bootstrap_servers: String,
    /// Application id.
    pub application_id: String,
    /// Input topic.
    pub input_topic: String,
    /// Output topic.
    pub output_topic: String,
    /// This instance's state directory.
    pub state_dir: PathBuf,
    /// Extra environment variables (`EDDY__...` settings, `EDDY_FAULT`).
    pub env: Vec<(String, String)>,
    /// The workspace binary to run: `wordcount`, or another app taking the same flags
    /// (`ticker`).
    pub binary: String,
}

/// A running app process whose stderr goes to a log file.
#[derive(Debug)]
pub struct AppProcess {
    name: String,
    spec: WordcountSpec,
    child: Child,
    log: PathBuf,
    starts: u32,
}

impl AppProcess {
    /// Starts wordcount as `name`, logging to `<state_dir>.log`, or to
    /// `$EDDY_TEST_LOG_DIR/<application id>-<name>.log` when that variable names a directory
    /// (logs kept after the test, for investigating a failure).
    ///
    /// # Errors
    /// Fails when the binary is missing or cannot start.
    pub fn start(name: &str, spec: WordcountSpec) -> anyhow::Result<Self> {
        let log = match std::env::var_os("EDDY_TEST_LOG_DIR") {
            Some(dir) => PathBuf::from(dir).join(format!("{}-{name}.log", spec.application_id)),
            None => spec.state_dir.with_extension("log"),
        };
        let child = Self::spawn(&spec, &log)?;
        Ok(AppProcess {
            name: name.to_owned(),
            spec,
            child,
            log,
            starts: 1,
        })
    }

    fn spawn(spec: &WordcountSpec, log: &Path) -> anyhow::Result<Child> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {log:?}"))?;
        let mut command = Command::new(workspace_binary(&spec.binary)?);
        command
            .arg("--bootstrap-servers")
            .arg(&spec.bootstrap_servers)
            .arg("--application-id")
            .arg(&spec.application_id)
            .arg("--input-topic")
            .arg(&spec.input_topic)
            .arg("--output-topic")
            .arg(&spec.output_topic)
            .arg("--state-dir")
            .arg(&spec.state_dir)
            // `EDDY_TEST_RUST_LOG` shows more of what the apps do (with `EDDY_TEST_LOG_DIR`).
            .env(
                "RUST_LOG",
                std::env::var("EDDY_TEST_RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        for (k, v) in &spec.env {
            command.env(k, v);
        }
        command
            .spawn()
            .with_context(|| format!("starting {}", spec.binary))
    }

    /// The instance's ops server, once it wrote its address (within 60 s).
    ///
    /// # Errors
    /// No address appeared in time.
    pub fn ops(&self) -> anyhow::Result<ops::OpsClient> {
        ops::OpsClient::of(
            &self.spec.state_dir,
            &self.spec.application_id,
            Duration::from_secs(60),
        )
    }

    /// The process name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Kills the process with SIGKILL and reaps it.
    ///
    /// # Errors
    /// Fails when the signal cannot be sent.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("kill -9")?;
        self.child.wait().context("reaping")?;
        Ok(())
    }

    /// Sends `signal` (`TERM`, `STOP`, `CONT`) with `kill`.
    ///
    /// # Errors
    /// Fails when `kill` fails.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {} failed", self.child.id());
        }
        Ok(())
    }

    /// Waits for the process to exit by itself, failing after `deadline`.
    ///
    /// # Errors
    /// Fails when it is still running at the deadline.
    pub fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        let mut exited = None;
        let waited = eventually(&format!("{} exiting", self.name), deadline, || {
            exited = self.child.try_wait()?;
            Ok(exited.is_some())
        });
        on_timeout(waited, || {
            bail!(
                "{} still running after {deadline:?}; log:\n{}",
                self.name,
                self.log_tail(40)
            )
        })?;
        exited.with_context(|| format!("{} exited without a status", self.name))
    }

    /// True while the process is stopped (SIGSTOP): its state in `/proc` is `T`.
    pub fn is_stopped(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|stat| {
                // The state follows the command name, which is in parentheses.
                let after = stat.rsplit_once(')')?.1;
                after.split_whitespace().next().map(|state| state == "T")
            })
            .unwrap_or(false)
    }

    /// The exit status when the process has ended by now, without waiting.
    ///
    /// # Errors
    /// Fails when the process cannot be checked.
    pub fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// SIGTERM, then waits for a clean exit.
    ///
    /// # Errors
    /// Fails when it does not exit in time or exits unsuccessfully.
    pub fn terminate(&mut self, deadline: Duration) -> anyhow::Result<()> {
        self.signal("TERM")?;
        let status = self
            .wait_exit(deadline)
            .map_err(|e| anyhow!("{e}\nits threads:\n{}", self.stacks()))?;
        if !status.success() {
            bail!(
                "{} exited with {status} after SIGTERM; log:\n{}",
                self.name,
                self.log_tail(40)
            );
        }
        Ok(())
    }

    /// Every thread's stack of the running process (with gdb), to show where it hangs.
    pub fn stacks(&self) -> String {
        let output = Command::new("gdb")
            .args([
                "-p",
                &self.child.id().to_string(),
                "-batch",
                "-ex",
                "thread apply all bt",
            ])
            .output();
        match output {
            Ok(out) => String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with('#') || l.starts_with("Thread"))
                .take(400)
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("(gdb could not run: {e})"),
        }
    }

    /// Starts the process again with the same settings and state directory, changing its
    /// environment with `env` (replacing variables of the same name).
    ///
    /// # Errors
    /// Fails when it is still running or cannot start.
    pub fn restart_with(&mut self, env: Vec<(String, String)>) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            bail!("{} is still running", self.name);
        }
        for (k, v) in env {
            self.spec.env.retain(|(name, _)| *name != k);
            self.spec.env.push((k, v));
        }
        // The address of the previous run's ops server is stale: ops() waits for the new one.
        let address = self
            .spec
            .state_dir
            .join(&self.spec.application_id)
            .join(eddy::ops::ADDRESS_FILE);
        if let Err(e) = std::fs::remove_file(&address) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e).with_context(|| format!("removing {}", address.display()));
            }
        }
        self.child = Self::spawn(&self.spec, &self.log)?;
        self.starts += 1;
        Ok(())
    }

    /// Starts the process again unchanged.
    ///
    /// # Errors
    /// As [`restart_with`](Self::restart_with).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.restart_with(Vec::new())
    }

    /// The whole log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `condition` holds, checking every 50 ms, failing with `what` after `deadline`:
/// the testkit's [`eventually`](eddy_testkit::eventually) for conditions that fail with
/// `anyhow` errors.
///
/// # Errors
/// Fails when the condition still does not hold at the deadline (an error [`on_timeout`]
/// recognises), or with the condition's own error.
pub fn eventually(
    what: &str,
    deadline: Duration,
    condition: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    eddy_testkit::eventually(what, deadline, condition)
}

/// Waits as [`eventually`] does, checking every `interval`: for a check that costs something
/// (a probe record, a query), or a wait measured to the millisecond.
///
/// # Errors
/// Fails when the condition still does not hold at the deadline (an error [`on_timeout`]
/// recognises), or with the condition's own error.
pub fn eventually_every(
    what: &str,
    deadline: Duration,
    interval: Duration,
    condition: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    eddy_testkit::eventually_every(what, deadline, interval, condition)
}

/// `waited` (the result of a wait such as [`eventually`]), with its timeout replaced by what
/// `timed_out` returns, which can describe the last state seen or carry on without it; the
/// condition's own errors pass unchanged (unless they are themselves a testkit timeout).
///
/// # Errors
/// The condition's error, or `timed_out`'s.
pub fn on_timeout<T>(
    waited: anyhow::Result<T>,
    timed_out: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match waited {
        Err(e) if matches!(e.downcast_ref(), Some(TestkitError::Timeout { .. })) => timed_out(),
        other => other,
    }
}

/// Deterministic input lines: `count` lines of 1 to 3 words drawn from `vocabulary` words,
/// some capitalised so lowercasing matters.
pub fn generate_lines(seed: u64, count: usize, vocabulary: usize) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let n = rng.random_range(1..=3);
            (0..n)
                .map(|_| {
                    let w = rng.random_range(0..vocabulary);
                    if rng.random_bool(0.1) {
                        format!("Word{w}")
                    } else {
                        format!("word{w}")
                    }
                })
                .collect::<Vec<_>>()
                .join(if rng.random_bool(0.5) { " " } else { "\t " })
        })
        .collect()
}

/// Occurrences of each word in `lines` (split on Unicode whitespace, lowercased), computed
/// independently of the app.
pub fn expected_counts<'a>(lines: impl IntoIterator<Item = &'a str>) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for line in lines {
        for word in line.split_whitespace() {
            *counts.entry(word.to_lowercase()).or_insert(0) += 1;
        }
    }
    counts
}

/// Checks word-count output: for every word the values, in output order, are exactly
/// 1, 2, ..., n with n its occurrences. Returns every violation found (at most 20 listed).
pub fn check_counts(output: &[ReadRecord], expected: &HashMap<String, u64>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    for record in output {
        let word = record.key_str();
        let value = record.value_str();
        let Ok(count) = value.parse::<u64>() else {
            problems.push(format!(
                "[{}]@{}: value `{value}` is not a count",
                record.partition, record.offset
            ));
            continue;
        };
        if let Some(&p) = partition_of.get(&word) {
            if p != record.partition {
                problems.push(format!(
                    "word `{word}` appears in partitions {p} and {}",
                    record.partition
                ));
            }
        }
        partition_of.insert(word.clone(), record.partition);
        let previous = last.get(&word).copied().unwrap_or(0);
        if count != previous + 1 {
            let kind = if count <= previous { "repeat" } else { "gap" };
            problems.push(format!(
                "{kind}: word `{word}` count {count} after {previous} at [{}]@{}",
                record.partition, record.offset
            ));
        }
        last.insert(word, count);
    }
    let words: BTreeMap<&String, &u64> = expected.iter().collect();
    for (word, &n) in words {
        let got = last.get(word).copied().unwrap_or(0);
        let at = partition_of
            .get(word)
            .map_or_else(String::new, |p| format!(" in [{p}]"));
        if got > n {
            problems.push(format!(
                "overcount: word `{word}` reached {got}{at}, expected {n}"
            ));
        } else if got < n {
            problems.push(format!(
                "shortfall: word `{word}` reached {got}{at}, expected {n}"
            ));
        }
    }
    for word in last.keys() {
        if !expected.contains_key(word) {
            problems.push(format!("word `{word}` was never in the input"));
        }
    }
    let total = problems.len();
    problems.truncate(20);
    if total > 20 {
        problems.push(format!("... {} more", total - 20));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_timeout_replaces_a_timeout_and_passes_the_condition_s_errors() {
        let timed_out = eventually("never", Duration::ZERO, || Ok(false));
        let replaced = on_timeout(timed_out.map(|()| 0), || Ok(7));
        assert_eq!(replaced.ok(), Some(7));
        let failed: anyhow::Result<()> = eventually("fails", Duration::ZERO, || bail!("broken"));
        let passed = on_timeout(failed, || Ok(()));
        assert_eq!(
            passed.err().map(|e| e.to_string()),
            Some("broken".to_owned())
        );
    }

    fn rec(partition: i32, offset: i64, word: &str, count: u64) -> ReadRecord {
        ReadRecord {
            partition,
            offset,
            key: Some(word.as_bytes().to_vec()),
            value: Some(count.to_string().into_bytes()),
            headers: Vec::new(),
        }
    }

    #[test]
    fn the_check_finds_repeats_gaps_and_shortfalls() {
        let expected = expected_counts(["a b", "A", "b"]);
        assert_eq!(expected["a"], 2);
        let good = [
            rec(0, 0, "a", 1),
            rec(1, 0, "b", 1),
            rec(0, 1, "a", 2),
            rec(1, 1, "b", 2),
        ];
        assert!(check_counts(&good, &expected).is_empty());
        let repeat = [
            rec(0, 0, "a", 1),
            rec(0, 1, "a", 1),
            rec(0, 2, "a", 2),
            rec(1, 0, "b", 1),
            rec(1, 1, "b", 2),
        ];
        let problems = check_counts(&repeat, &expected);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("repeat: word `a` count 1 after 1"));
        let short = [rec(0, 0, "a", 2), rec(1, 0, "b", 1)];
        let problems = check_counts(&short, &expected);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("gap: word `a` count 2 after 0"));
        assert!(problems[1].starts_with("shortfall: word `b` reached 1 in [1], expected 2"));
        let over = [
            rec(0, 0, "a", 1),
            rec(0, 1, "a", 2),
            rec(0, 2, "a", 3),
            rec(1, 0, "b", 1),
            rec(1, 1, "b", 2),
        ];
        assert_eq!(
            check_counts(&over, &expected),
            vec!["overcount: word `a` reached 3 in [0], expected 2"]
        );
    }
}

/// A word-count run: topics, application id and state directories of its instances.
#[derive(Debug)]
pub struct WordcountRun {
    /// The broker.
    pub kafka: &'static eddy_testkit::Kafka,
    /// Application id.
    pub application_id: String,
    /// Input topic.
    pub input: String,
    /// Output topic.
    pub output: String,
    /// Holds the state directories and logs.
    pub dir: tempfile::TempDir,
}

impl WordcountRun {
    /// Creates input and output topics with `partitions` partitions each.
    ///
    /// # Errors
    /// Fails when Kafka cannot be reached or the topics cannot be created.
    pub fn new(prefix: &str, partitions: i32) -> anyhow::Result<Self> {
        Self::on(eddy_testkit::Kafka::shared()?, prefix, partitions)
    }

    /// As [`new`](Self::new), on the cluster `kafka` (a test's own cluster).
    ///
    /// # Errors
    /// Fails when Kafka cannot be reached or the topics cannot be created.
    pub fn on(
        kafka: &'static eddy_testkit::Kafka,
        prefix: &str,
        partitions: i32,
    ) -> anyhow::Result<Self> {
        let run = WordcountRun {
            kafka,
            application_id: eddy_testkit::unique_name(prefix),
            input: eddy_testkit::unique_name(&format!("{prefix}-lines")),
            output: eddy_testkit::unique_name(&format!("{prefix}-counts")),
            dir: tempfile::tempdir()?,
        };
        kafka.create_topic(&run.input, partitions)?;
        kafka.create_topic(&run.output, partitions)?;
        Ok(run)
    }

    /// The spec of instance `name` (its own state directory).
    pub fn spec(&self, name: &str, env: &[(&str, &str)]) -> WordcountSpec {
        WordcountSpec {
            bootstrap_servers: self.kafka.bootstrap_servers().to_owned(),
            application_id: self.application_id.clone(),
            input_topic: self.input.clone(),
            output_topic: self.output.clone(),
            state_dir: self.dir.path().join(name),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            binary: "wordcount".to_owned(),
        }
    }

    /// Starts instance `name`.
    ///
    /// # Errors
    /// Fails when it cannot start.
    pub fn start(&self, name: &str, env: &[(&str, &str)]) -> anyhow::Result<AppProcess> {
        AppProcess::start(name, self.spec(name, env))
    }

    /// Produces `lines` as input values without keys.
    ///
    /// # Errors
    /// Fails when a record is not acknowledged.
    pub fn produce_lines(&self, lines: &[String]) -> anyhow::Result<()> {
        self.kafka.produce(
            &self.input,
            lines.iter().map(|l| (None, l.as_bytes().to_vec())),
        )?;
        Ok(())
    }

    /// Reads the output with read_committed and returns the exactness violations.
    ///
    /// # Errors
    /// Fails when the output cannot be read.
    pub fn violations(&self, expected: &HashMap<String, u64>) -> anyhow::Result<Vec<String>> {
        Ok(check_counts(&self.committed_output()?, expected))
    }

    /// The output topic's committed records.
    fn committed_output(&self) -> anyhow::Result<Vec<ReadRecord>> {
        Ok(self
            .kafka
            .read_all(&self.output, eddy_testkit::Isolation::ReadCommitted)?)
    }

    /// Where counts went wrong, stage by stage: whether the input topic holds exactly the
    /// lines produced (else the test's producer duplicated), and per partition of the
    /// repartition topic (read_committed) how many words it holds against the input's (extra
    /// words there: the split step processed lines twice; none: the count step did).
    fn locate_violation(
        &self,
        expected: &HashMap<String, u64>,
        output: &[ReadRecord],
    ) -> anyhow::Result<String> {
        let stored = self
            .kafka
            .read_all(&self.input, eddy_testkit::Isolation::ReadUncommitted)?;
        let values: Vec<String> = stored.iter().map(ReadRecord::value_str).collect();
        let input = if &expected_counts(values.iter().map(String::as_str)) == expected {
            "the input topic holds exactly the lines produced".to_owned()
        } else {
            format!(
                "the input topic differs from the lines produced ({} records stored)",
                stored.len()
            )
        };
        let repartition = self.kafka.read_all(
            &format!("{}-counts-repartition", self.application_id),
            eddy_testkit::Isolation::ReadCommitted,
        )?;
        // Per word: its partition and how many times it was committed.
        let mut words: HashMap<String, (i32, u64)> = HashMap::new();
        for record in &repartition {
            let entry = words
                .entry(record.key_str())
                .or_insert((record.partition, 0));
            entry.1 += 1;
        }
        let mut per_partition: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
        for (word, &n) in expected {
            if let Some(&(p, got)) = words.get(word) {
                let entry = per_partition.entry(p).or_default();
                entry.0 += got;
                entry.1 += n;
            }
        }
        let split: Vec<String> = per_partition
            .iter()
            .map(|(p, (got, n))| format!("[{p}] {got}/{n}"))
            .collect();
        // The count step maps each repartition record to one output record: where its
        // output leaves the repartition topic's order shows which records it took twice.
        // (offset, key) of the records of `records` that `keep` selects, in order.
        let pairs = |records: &[ReadRecord], keep: &dyn Fn(&ReadRecord) -> bool| {
            records
                .iter()
                .filter(|r| keep(r))
                .map(|r| (r.offset, r.key_str()))
                .collect::<Vec<_>>()
        };
        let mut jumps = Vec::new();
        for p in per_partition.keys() {
            let input = pairs(&repartition, &|r| r.partition == *p);
            let out = pairs(output, &|r| {
                words.get(&r.key_str()).is_some_and(|(wp, _)| wp == p)
            });
            let input: Vec<(i64, &str)> = input.iter().map(|(o, k)| (*o, k.as_str())).collect();
            let out: Vec<(i64, &str)> = out.iter().map(|(o, k)| (*o, k.as_str())).collect();
            for d in departures::departures(&input, &out, 3) {
                jumps.push(format!("[{p}] {d}"));
            }
        }
        let jumps = if jumps.is_empty() {
            "every count partition's output follows its repartition records in order".to_owned()
        } else {
            format!(
                "the count step's output left its input's order: {}",
                jumps.join("; ")
            )
        };
        Ok(format!(
            "{input}; repartition words committed per partition against the input's: {}; {jumps}",
            split.join(", ")
        ))
    }

    /// Topics on which no transaction may be left open: output, repartition, changelog.
    pub fn transactional_topics(&self) -> Vec<String> {
        vec![
            self.output.clone(),
            format!("{}-counts-repartition", self.application_id),
            format!("{}-counts-changelog", self.application_id),
        ]
    }

    /// Checks that no transaction is open on any of `topics`: each partition's last stable
    /// offset equals its high watermark.
    ///
    /// # Errors
    /// Fails naming the topic with an open transaction.
    pub fn assert_no_open_transaction(&self, topics: &[String]) -> anyhow::Result<()> {
        use eddy_testkit::Isolation;
        for topic in topics {
            let committed = self.kafka.end_offsets(topic, Isolation::ReadCommitted)?;
            let written = self.kafka.end_offsets(topic, Isolation::ReadUncommitted)?;
            if committed != written {
                bail!("open transaction on {topic}: last stable offsets {committed:?}, high watermarks {written:?}");
            }
        }
        Ok(())
    }

    /// Checks that no transaction is open (read_committed end == read_uncommitted end on
    /// every transactional topic) and that the group empties within 10 s of the instances'
    /// exit: a member a thread's start-over left joining is removed by the coordinator only
    /// when its session (6 s) expires.
    ///
    /// # Errors
    /// Fails naming the topic with an open transaction, or the member count.
    pub fn assert_settled(&self) -> anyhow::Result<()> {
        self.assert_no_open_transaction(&self.transactional_topics())?;
        let mut members = 0;
        let emptied = eventually("the group empties", Duration::from_secs(10), || {
            members = self.kafka.group_members(&self.application_id)?;
            Ok(members == 0)
        });
        on_timeout(emptied, || {
            bail!("group {} still has {members} members", self.application_id)
        })
    }
}

impl WordcountRun {
    /// Waits until the committed output holds one record per input word, stops `apps` with
    /// SIGTERM, and checks exactness and that nothing is left open. Returns the output count.
    ///
    /// # Errors
    /// Fails on a timeout (with the apps' log tails), an unclean exit, any exactness
    /// violation, an open transaction or a remaining group member.
    pub fn finish_exactly(
        &self,
        apps: &mut [AppProcess],
        expected: &HashMap<String, u64>,
    ) -> anyhow::Result<u64> {
        let total: u64 = expected.values().sum();
        let seen = self
            .kafka
            .tail(&self.output)?
            .wait_for(total, Duration::from_secs(600))
            .map_err(|e| with_log_tails(apps, e))?;
        for app in apps.iter_mut() {
            app.terminate(Duration::from_secs(60))?;
        }
        let output = self.committed_output()?;
        let violations = check_counts(&output, expected);
        if !violations.is_empty() {
            bail!(
                "exactness violated ({}):\n{}\n{}",
                self.locate_violation(expected, &output)?,
                violations.join("\n"),
                keep_logs(apps)
            );
        }
        self.assert_settled()?;
        Ok(seen)
    }
}

/// Counts per `(key, window start)`.
pub type WindowedCounts = BTreeMap<(String, i64), u64>;

/// The committed windowed counts of `topic` (keys as `WindowedSerde` writes them: the key's
/// bytes, then start and end as 8-byte big-endian milliseconds; values decimal counts), each
/// window `size` long: `(key, start) → count`, and the windows written more than once.
///
/// # Errors
/// The topic cannot be read, or a record is not a windowed count of that size.
pub fn windowed_counts(
    kafka: &eddy_testkit::Kafka,
    topic: &str,
    size: i64,
) -> anyhow::Result<(WindowedCounts, Vec<(String, i64)>)> {
    let mut counts = BTreeMap::new();
    let mut twice = Vec::new();
    for r in kafka.read_all(topic, eddy_testkit::Isolation::ReadCommitted)? {
        let key = r.key.unwrap_or_default();
        anyhow::ensure!(key.len() > 16, "windowed key too short: {key:?}");
        let (user, times) = key.split_at(key.len() - 16);
        let start = i64::from_be_bytes(times[..8].try_into()?);
        let end = i64::from_be_bytes(times[8..].try_into()?);
        anyhow::ensure!(
            end - start == size,
            "window [{start}, {end}) is not {size} ms"
        );
        let window = (String::from_utf8(user.to_vec())?, start);
        let count = String::from_utf8(r.value.unwrap_or_default())?.parse()?;
        if counts.insert(window.clone(), count).is_some() {
            twice.push(window);
        }
    }
    Ok((counts, twice))
}

/// Checks windowed counts against the expected ones: fails listing every window whose
/// count differs, is missing, or should not exist.
///
/// # Errors
/// Some window is wrong.
pub fn check_windows(expected: &WindowedCounts, got: &WindowedCounts) -> anyhow::Result<()> {
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(w, n)| got.get(*w) != Some(*n))
        .map(|(w, n)| format!("{w:?}: expected {n}, got {:?}", got.get(w)))
        .chain(
            got.keys()
                .filter(|w| !expected.contains_key(*w))
                .map(|w| format!("{w:?}: not a window of the input")),
        )
        .collect();
    if !wrong.is_empty() {
        bail!("{} wrong windows:\n{}", wrong.len(), wrong.join("\n"));
    }
    Ok(())
}

/// `error` followed by the last log lines of each of `apps`, for a failure they may explain,
/// and where their whole logs were kept ([`keep_logs`]).
pub fn with_log_tails(apps: &[AppProcess], error: impl std::fmt::Display) -> anyhow::Error {
    let logs: Vec<String> = apps
        .iter()
        .map(|a| format!("--- {}:\n{}", a.name(), a.log_tail(20)))
        .collect();
    anyhow!("{error}\n{}\n{}", logs.join("\n"), keep_logs(apps))
}

/// Keeps the whole logs of `apps` after a failure, whose state directories (and the logs
/// beside them) the test's temporary directory removes: copied to
/// `<temp>/eddy-kept-logs/<application id>/`, unless they already are in
/// `$EDDY_TEST_LOG_DIR`. Returns a line saying where they are, or why they are not.
pub fn keep_logs(apps: &[AppProcess]) -> String {
    let Some(first) = apps.first() else {
        return "(no instance logs to keep)".to_owned();
    };
    if let Some(dir) = std::env::var_os("EDDY_TEST_LOG_DIR") {
        return format!("instance logs: {}", PathBuf::from(dir).display());
    }
    let dir = std::env::temp_dir()
        .join("eddy-kept-logs")
        .join(&first.spec.application_id);
    let copied = std::fs::create_dir_all(&dir).and_then(|()| {
        apps.iter().try_for_each(|app| {
            std::fs::copy(&app.log, dir.join(format!("{}.log", app.name))).map(drop)
        })
    });
    match copied {
        Ok(()) => format!("instance logs kept in {}", dir.display()),
        Err(e) => format!(
            "(instance logs could not be kept in {}: {e})",
            dir.display()
        ),
    }
}

/// Per word, its counts in output order; only records at or past `from` (next offset per
/// partition) when given.
pub fn word_sequences(output: &[ReadRecord], from: Option<&[i64]>) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for record in output {
        let start = from
            .and_then(|f| f.get(usize::try_from(record.partition).ok()?).copied())
            .unwrap_or(0);
        if record.offset < start {
            continue;
        }
        if let Ok(count) = record.value_str().parse::<u64>() {
            out.entry(record.key_str()).or_default().push(count);
        }
    }
    out
}
