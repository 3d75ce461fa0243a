//! A steady input load on its own thread: chunks of generated lines at a fixed pace until
//! stopped, returning every line it produced.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::generate_lines;

/// A running load.
#[derive(Debug)]
pub struct SteadyLoad {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<anyhow::Result<Vec<String>>>,
}

impl SteadyLoad {
    /// Produces `chunk` lines (words from `vocabulary`, seeds counting up from `seed`) to
    /// `topic` every `tick` until [`stop`](Self::stop).
    pub fn start(
        kafka: &'static eddy_testkit::Kafka,
        topic: &str,
        seed: u64,
        chunk: usize,
        vocabulary: usize,
        tick: Duration,
    ) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let topic = topic.to_owned();
        let thread = std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
            let mut produced = Vec::new();
            let mut seed = seed;
            // Waiting on the stop channel paces the load and ends it.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                let lines = generate_lines(seed, chunk, vocabulary);
                seed += 1;
                kafka.produce(&topic, lines.iter().map(|l| (None, l.as_bytes().to_vec())))?;
                produced.extend(lines);
            }
            Ok(produced)
        });
        SteadyLoad { stop, thread }
    }

    /// Stops the load and returns every line it produced.
    ///
    /// # Errors
    /// A chunk could not be produced, or the thread panicked.
    pub fn stop(self) -> anyhow::Result<Vec<String>> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the load thread panicked"))?
    }
}
