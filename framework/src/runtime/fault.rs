//! Fault injection for crash tests: abort or freeze the process at a chosen point of the
//! commit.

use std::sync::atomic::{AtomicBool, Ordering};

/// Where to fail, read from the `EDDY_FAULT` environment variable as `<point>:<n>`:
/// `crash_before_commit:<n>` aborts the process on the `n`-th commit after the outputs and
/// changelog records are sent but before the commit; `crash_after_commit:<n>` aborts after the
/// `n`-th Kafka commit succeeded but before the state is applied to RocksDB;
/// `stop_after_offsets:<n>` freezes the process (SIGSTOP to itself, once) on the `n`-th commit
/// with state changes once its input offsets joined the transaction, holding back its changelog
/// records until it is continued: a zombie whose changelog writes the brokers have not seen
/// yet, as when the changelog's leader is unreachable. For two-phase sinks, counted in
/// commits that prepared something: `crash_after_prepare:<n>` aborts between the sinks'
/// PREPARE and the Kafka commit, `stop_after_prepare:<n>` freezes the process there (once),
/// `crash_before_external_commit:<n>` aborts between the Kafka commit and the sinks' COMMIT
/// PREPARED. `lose_state_offsets:<n>` leaves the input offsets of the tasks whose state
/// changed out of the `n`-th commit with state changes, as a coordinator failover that lost
/// them would, and aborts the process after that commit, before the RocksDB apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fault {
    before_commit: Option<u64>,
    after_commit: Option<u64>,
    stop_after_offsets: Option<u64>,
    after_prepare: Option<u64>,
    stop_after_prepare: Option<u64>,
    before_external_commit: Option<u64>,
    lose_state_offsets: Option<u64>,
}

impl Fault {
    /// Reads `EDDY_FAULT`; unset or unparsable means no fault (a bad value is logged).
    pub(crate) fn from_env() -> Self {
        match std::env::var("EDDY_FAULT") {
            Ok(spec) if spec.trim().is_empty() => Fault::default(),
            Ok(spec) => Self::parse(&spec).unwrap_or_else(|| {
                tracing::error!(spec, "ignoring unparsable EDDY_FAULT");
                Fault::default()
            }),
            Err(_) => Fault::default(),
        }
    }

    fn parse(spec: &str) -> Option<Self> {
        let (point, n) = spec.split_once(':')?;
        let n: u64 = n.trim().parse().ok()?;
        match point.trim() {
            "crash_before_commit" => Some(Fault {
                before_commit: Some(n),
                ..Fault::default()
            }),
            "crash_after_commit" => Some(Fault {
                after_commit: Some(n),
                ..Fault::default()
            }),
            "stop_after_offsets" => Some(Fault {
                stop_after_offsets: Some(n),
                ..Fault::default()
            }),
            "crash_after_prepare" => Some(Fault {
                after_prepare: Some(n),
                ..Fault::default()
            }),
            "stop_after_prepare" => Some(Fault {
                stop_after_prepare: Some(n),
                ..Fault::default()
            }),
            "crash_before_external_commit" => Some(Fault {
                before_external_commit: Some(n),
                ..Fault::default()
            }),
            "lose_state_offsets" => Some(Fault {
                lose_state_offsets: Some(n),
                ..Fault::default()
            }),
            _ => None,
        }
    }

    /// True when the process is to crash before commit number `n`.
    pub(crate) fn crashes_before_commit(&self, n: u64) -> bool {
        self.before_commit == Some(n)
    }

    /// Called before commit number `n` (counting from 1).
    pub(crate) fn before_commit(&self, n: u64) {
        if self.before_commit == Some(n) {
            crash("before commit", n);
        }
    }

    /// Called after the `n`-th commit with state changes succeeded, before they are applied.
    pub(crate) fn after_commit(&self, n: u64) {
        if self.after_commit == Some(n) {
            crash("after the Kafka commit, before the RocksDB apply of", n);
        }
        if self.lose_state_offsets == Some(n) {
            crash(
                "after committing without the offsets of changed state, before the RocksDB apply of",
                n,
            );
        }
    }

    /// True when the `n`-th commit with state changes leaves out the input offsets of the
    /// tasks whose state changed.
    pub(crate) fn loses_state_offsets(&self, n: u64) -> bool {
        self.lose_state_offsets == Some(n)
    }
}

impl Fault {
    /// Called after the two-phase sinks prepared the `n`-th commit that prepared anything,
    /// before the Kafka commit.
    pub(crate) fn after_prepare(&self, n: u64) {
        if self.after_prepare == Some(n) {
            crash("after the external PREPARE, before the Kafka commit of", n);
        }
        if self.stop_after_prepare == Some(n) {
            stop_once("after the external PREPARE of", n);
        }
    }

    /// Called after the Kafka commit of the `n`-th commit that prepared anything, before the
    /// two-phase sinks commit it.
    pub(crate) fn before_external_commit(&self, n: u64) {
        if self.before_external_commit == Some(n) {
            crash(
                "after the Kafka commit, before the external COMMIT PREPARED of",
                n,
            );
        }
    }
}

/// Set once the process stopped itself for `stop_after_offsets`.
static STOPPED: AtomicBool = AtomicBool::new(false);

impl Fault {
    /// True when the changelog records of the `n`-th commit with state changes are to be
    /// held back until [`stop_after_offsets`](Self::stop_after_offsets) returns.
    pub(crate) fn holds_changelog(&self, n: u64) -> bool {
        self.stop_after_offsets == Some(n) && !STOPPED.load(Ordering::Relaxed)
    }

    /// Called once the input offsets of the `n`-th commit with state changes joined the
    /// transaction: freezes the process until it receives SIGCONT.
    pub(crate) fn stop_after_offsets(&self, n: u64) {
        if self.stop_after_offsets == Some(n) {
            stop_once("after the offsets of", n);
        }
    }
}

/// Freezes the process (SIGSTOP to itself) the first time it is called; once per process,
/// because a thread that starts over counts its commits from 1 again.
fn stop_once(point: &str, n: u64) {
    if !STOPPED.swap(true, Ordering::Relaxed) {
        eprintln!("EDDY_FAULT: stopping the process {point} commit {n}");
        let stopped = std::process::Command::new("kill")
            .arg("-STOP")
            .arg(std::process::id().to_string())
            .status();
        if let Err(e) = stopped {
            crash(&format!("(kill -STOP failed: {e})"), n);
        }
    }
}

fn crash(point: &str, n: u64) -> ! {
    eprintln!("EDDY_FAULT: aborting the process {point} commit {n}");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            Fault::parse("crash_after_commit:3"),
            Some(Fault {
                before_commit: None,
                after_commit: Some(3),
                stop_after_offsets: None,
                after_prepare: None,
                stop_after_prepare: None,
                before_external_commit: None,
                lose_state_offsets: None,
            })
        );
        assert_eq!(
            Fault::parse("crash_after_prepare:2").map(|f| f.after_prepare),
            Some(Some(2))
        );
        assert_eq!(
            Fault::parse("crash_before_external_commit:4").map(|f| f.before_external_commit),
            Some(Some(4))
        );
        assert_eq!(
            Fault::parse("crash_before_commit: 1").map(|f| f.before_commit),
            Some(Some(1))
        );
        assert!(Fault::parse("stop_after_offsets:2").is_some_and(|f| f.holds_changelog(2)));
        assert!(Fault::parse("lose_state_offsets:2").is_some_and(|f| f.loses_state_offsets(2)));
        assert_eq!(Fault::parse("crash_sometime:1"), None);
        assert_eq!(Fault::parse("crash_after_commit"), None);
    }
}
