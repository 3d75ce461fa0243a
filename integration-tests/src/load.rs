//! A steady input load on its own thread: chunks of generated lines at a fixed pace until
//! stopped, returning every line it produced.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
            // One producer for the whole load: a new one per chunk took about 0.6 s to start,
            // which paced the load far below its rate.
            let producer = kafka.producer()?;
            let mut produced = Vec::new();
            let mut seed = seed;
            let began = Instant::now();
            let mut chunks: u32 = 0;
            // Waiting on the stop channel until the next chunk is due paces the load on a
            // fixed schedule (a slow chunk is followed at once) and ends it.
            loop {
                let due = began + tick * chunks;
                let wait = due.saturating_duration_since(Instant::now());
                match stopped.recv_timeout(wait) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                let lines = generate_lines(seed, chunk, vocabulary);
                seed += 1;
                chunks += 1;
                producer.send_all(
                    &topic,
                    lines.iter().map(|l| (None, l.as_bytes().to_vec(), None)),
                )?;
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
