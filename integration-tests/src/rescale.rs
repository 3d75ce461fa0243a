//! Rescaling under a steady load: wordcount goes 1 → 2 → 4 → 2 instances while 1,000 lines
//! a second arrive, and the longest pause in its output is measured per step.

use std::time::{Duration, Instant};

use crate::load::SteadyLoad;
use crate::{AppProcess, WordcountRun};

/// Lines per input chunk and the time between chunks of the steady load (1,000 lines/s).
pub const CHUNK: usize = 100;
/// See [`CHUNK`].
pub const TICK: Duration = Duration::from_millis(100);

/// The steps, each with the second of the run it starts at (the last ends the run).
const PLAN: [(&str, u64); 4] = [("1 → 2", 10), ("2 → 4", 22), ("4 → 2", 34), ("end", 46)];

/// The longest stretch without new output in one part of the run.
#[derive(Debug, Clone)]
pub struct Pause {
    /// What the part is: "steady" (from the first output to the first step) or a step.
    pub part: String,
    /// When the part began, since the load began.
    pub began: Duration,
    /// The longest pause.
    pub longest: Duration,
    /// When that pause ended, since the load began.
    pub ended: Duration,
}

impl std::fmt::Display for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (at {:.1} s): longest pause {:.2} s, ended at {:.1} s",
            self.part,
            self.began.as_secs_f64(),
            self.longest.as_secs_f64(),
            self.ended.as_secs_f64()
        )
    }
}

/// What a rescale run leaves: the instances still running, every line produced, and the
/// pauses (steady first, then one per step).
#[derive(Debug)]
pub struct Rescaled {
    /// The two instances left running.
    pub apps: Vec<AppProcess>,
    /// Every input line.
    pub produced: Vec<String>,
    /// The longest pause of the steady part and of each step.
    pub pauses: Vec<Pause>,
    /// Every instance's log, the stopped ones' included.
    pub logs: String,
}

impl Rescaled {
    /// True when the instances logged that `processing.group_protocol = auto` chose the
    /// consumer protocol.
    pub fn auto_chose_consumer(&self) -> bool {
        self.logs.contains("group protocol chosen") && self.logs.contains("protocol=Consumer")
    }
}

/// Runs wordcount 1 → 2 → 4 → 2 instances (started with `env`) under a steady load of
/// [`CHUNK`] lines per [`TICK`], sampling its committed output every 50 ms.
///
/// # Errors
/// An instance cannot start or stop, or the output cannot be read.
pub fn rescale_under_load(run: &WordcountRun, env: &[(&str, &str)]) -> anyhow::Result<Rescaled> {
    let load = SteadyLoad::start(run.kafka, &run.input, 1_000, CHUNK, 400, TICK);
    let mut apps = vec![run.start("a", env)?];
    let mut stopping = Stopping::default();
    let mut tail = run.kafka.tail(&run.output)?;
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let start = Instant::now();
    let mut steps: Vec<(&str, Instant)> = Vec::new();
    for (step, at) in PLAN {
        // Sampling goes on while instances stop: a wait for one to exit here once left
        // the output unsampled for as long, and counted that time as a pause.
        while start.elapsed() < Duration::from_secs(at) {
            stopping.step()?;
            samples.push((Instant::now(), tail.count(Duration::from_millis(50))?));
        }
        steps.push((step, Instant::now()));
        match step {
            "1 → 2" => apps.push(run.start("b", env)?),
            "2 → 4" => {
                apps.push(run.start("c", env)?);
                apps.push(run.start("d", env)?);
            }
            "4 → 2" => stopping.queue.extend(apps.drain(2..)),
            _ => stopping.finish()?,
        }
    }
    let stopped_logs = stopping.logs;
    let produced = load.stop()?;

    let since = |t: Instant| t - start;
    let longest_gap = |part: &str, from: Instant, to: Instant| {
        let mut last_change = from;
        let mut last_count = None;
        let mut pause = Pause {
            part: part.to_owned(),
            began: since(from),
            longest: Duration::ZERO,
            ended: since(from),
        };
        for &(t, c) in samples.iter().filter(|(t, _)| *t >= from && *t < to) {
            if last_count != Some(c) {
                if t - last_change > pause.longest {
                    pause.longest = t - last_change;
                    pause.ended = since(t);
                }
                last_change = t;
                last_count = Some(c);
            }
        }
        pause
    };
    // Steady from the first output on (before it, the app was starting).
    let first_output = samples
        .iter()
        .find(|(_, c)| *c > 0)
        .map_or(steps[0].1, |(t, _)| *t);
    let mut pauses = vec![longest_gap("steady", first_output, steps[0].1)];
    for pair in steps.windows(2) {
        pauses.push(longest_gap(pair[0].0, pair[0].1, pair[1].1));
    }
    let logs = apps.iter().map(AppProcess::log_text).collect::<String>() + &stopped_logs;
    Ok(Rescaled {
        apps,
        produced,
        pauses,
        logs,
    })
}

/// How long a stopping instance has to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// Instances stopping one after another, as a scale-down stops them: the next gets SIGTERM
/// once the one before has exited. Driven between samples, so it never holds them up.
#[derive(Default)]
struct Stopping {
    queue: std::collections::VecDeque<AppProcess>,
    /// The instance told to stop, and when.
    current: Option<(AppProcess, Instant)>,
    /// The logs of those that exited.
    logs: String,
}

impl Stopping {
    /// Notes an exit and sends the next SIGTERM; never waits.
    fn step(&mut self) -> anyhow::Result<()> {
        if let Some((app, since)) = &mut self.current {
            match app.exited()? {
                Some(status) if status.success() => {
                    self.logs.push_str(&app.log_text());
                    self.current = None;
                }
                Some(status) => anyhow::bail!(
                    "{} exited with {status} after SIGTERM; log:\n{}",
                    app.name,
                    app.log_tail(40)
                ),
                None if since.elapsed() > STOP_DEADLINE => anyhow::bail!(
                    "{} still running {STOP_DEADLINE:?} after SIGTERM; log:\n{}",
                    app.name,
                    app.log_tail(40)
                ),
                None => return Ok(()),
            }
        }
        if let Some(next) = self.queue.pop_front() {
            next.signal("TERM")?;
            self.current = Some((next, Instant::now()));
        }
        Ok(())
    }

    /// Waits until every instance has stopped.
    fn finish(&mut self) -> anyhow::Result<()> {
        while self.current.is_some() || !self.queue.is_empty() {
            self.step()?;
            if let Some((app, since)) = &mut self.current {
                app.wait_exit(STOP_DEADLINE.saturating_sub(since.elapsed()))?;
            }
        }
        Ok(())
    }
}
