//! A Kafka cluster of its own for one test: started with `compose/local/kafka.sh` on a port and
//! run directory of its own, with broker faults on demand, stopped when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{kafka_script, Kafka, TestkitError};

/// A cluster of `brokers` brokers that only this test uses.
#[derive(Debug)]
pub struct OwnCluster {
    kafka: &'static Kafka,
    port: u16,
    run_dir: tempfile::TempDir,
    brokers: u32,
}

/// How a broker goes down before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerStop {
    /// SIGTERM: a clean shutdown that moves leadership away first.
    Clean,
    /// SIGKILL: the process vanishes mid-request.
    Kill,
}

impl OwnCluster {
    /// Starts `brokers` brokers whose client ports begin at `port` (broker i listens on
    /// `port + 2(i-1)`, its controller on the next port), with extra `env` for the script
    /// (for example `EDDY_KAFKA_CLUSTER_ID`).
    ///
    /// # Errors
    /// Fails with the script's output when the cluster does not become ready.
    pub fn start(brokers: u32, port: u16, env: &[(&str, &str)]) -> Result<Self, TestkitError> {
        let run_dir = tempfile::tempdir().map_err(|e| start_error(format!("temp dir: {e}")))?;
        let mut cluster = OwnCluster {
            // Leaked on purpose: the helpers that take a cluster want `&'static Kafka`, and a
            // test process starts at most a few clusters.
            kafka: Box::leak(Box::new(Kafka::at(String::new()))),
            port,
            run_dir,
            brokers,
        };
        let mut args = vec!["start".to_owned(), "--brokers".to_owned()];
        args.push(brokers.to_string());
        let stdout = cluster.script(&args, env)?;
        let servers = stdout.lines().last().unwrap_or_default().trim().to_owned();
        cluster.kafka = Box::leak(Box::new(Kafka::at(servers)));
        cluster
            .kafka
            .wait_until_answering(Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// The cluster's client view.
    pub fn kafka(&self) -> &'static Kafka {
        self.kafka
    }

    /// Number of brokers.
    pub fn brokers(&self) -> u32 {
        self.brokers
    }

    /// Stops broker `id` as `how` says, starts it again and waits until every broker answers.
    ///
    /// # Errors
    /// Fails with the script's output when the broker does not come back.
    pub fn restart_broker(&self, id: u32, how: BrokerStop) -> Result<(), TestkitError> {
        let mut args = vec!["restart-broker".to_owned(), id.to_string()];
        if how == BrokerStop::Kill {
            args.push("--kill".to_owned());
        }
        self.script(&args, &[]).map(|_| ())
    }

    /// Where the brokers keep their data and logs.
    pub fn run_dir(&self) -> PathBuf {
        self.run_dir.path().to_path_buf()
    }

    fn script(&self, args: &[String], env: &[(&str, &str)]) -> Result<String, TestkitError> {
        let script = kafka_script();
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .args(args)
            .env("EDDY_KAFKA_PORT", self.port.to_string())
            .env("EDDY_KAFKA_RUN_DIR", self.run_dir.path());
        for (k, v) in env {
            command.env(k, v);
        }
        let output = command
            .output()
            .map_err(|e| start_error(format!("could not run bash: {e}")))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(TestkitError::Start {
                script: format!("{} {}", script.display(), args.join(" ")),
                reason: format!(
                    "exit status {}\n{stdout}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }
        Ok(stdout)
    }
}

fn start_error(reason: String) -> TestkitError {
    TestkitError::Start {
        script: kafka_script().display().to_string(),
        reason,
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.script(&["stop".to_owned()], &[]);
    }
}
