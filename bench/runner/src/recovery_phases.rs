//! Where an Eddy recovery spends its time: the phases between kill -9 and processing again,
//! read from the restarted instance's log (each line opens with its UTC timestamp).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Seconds from the kill to each phase's end, as the restarted instance logged them; `None`
/// when the log does not show the phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Phases {
    /// The process started and read its configuration (`starting`).
    pub started: Option<f64>,
    /// The first task was assigned: the consumer joined the group.
    pub joined: Option<f64>,
    /// Every task's stores were open and its restore planned (the last `restore plan`).
    pub stores_open: Option<f64>,
    /// Every task was restored and its start offset known (the last `task running`).
    pub running: Option<f64>,
    /// Every task processed its first record (the last `first input record`).
    pub first_records: Option<f64>,
}

impl Phases {
    /// What each phase's end means, in the order of [`Phases::ends`].
    pub const NAMES: [&'static str; 5] = [
        "process started, configuration read",
        "group joined (first task assigned)",
        "stores open, restores planned",
        "restored, start offsets known",
        "every task processed a record",
    ];

    /// Each phase's end, in the order of [`Phases::NAMES`].
    pub fn ends(&self) -> [Option<f64>; 5] {
        [
            self.started,
            self.joined,
            self.stores_open,
            self.running,
            self.first_records,
        ]
    }

    /// The phases logged in `log` after byte `from`, relative to `killed`.
    ///
    /// # Errors
    /// The log cannot be read.
    pub fn read(log: &Path, from: u64, killed: SystemTime) -> std::io::Result<Phases> {
        let mut file = std::fs::File::open(log)?;
        file.seek(SeekFrom::Start(from))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(Self::parse(&text, killed))
    }

    /// The phases in log `text`, relative to `killed`.
    pub fn parse(text: &str, killed: SystemTime) -> Phases {
        let mut phases = Phases::default();
        for line in text.lines() {
            let Some(at) = line
                .split_whitespace()
                .next()
                .and_then(parse_utc)
                .and_then(|t| t.duration_since(killed).ok())
                .map(|d| d.as_secs_f64())
            else {
                continue;
            };
            if line.contains(" starting application_id=") {
                phases.started.get_or_insert(at);
            } else if line.contains(" task assigned") {
                phases.joined.get_or_insert(at);
            } else if line.contains(" restore plan ") {
                phases.stores_open = Some(at);
            } else if line.contains(" task running ") {
                phases.running = Some(at);
            } else if line.contains(" first input record ") {
                phases.first_records = Some(at);
            }
        }
        phases
    }
}

/// Where a log file ends now: phases of the next start are read from there.
pub fn log_end(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

/// `2026-12-03T19:12:39.693260Z` as a time; `None` for anything else.
fn parse_utc(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut parts = hms.splitn(3, ':').map(str::parse::<u64>);
    let (h, m, s) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    let digits = fraction.len().min(9);
    let nanos = fraction.get(..digits)?.parse::<u64>().ok()? * 10u64.pow(9 - digits as u32);
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let seconds = days * 86_400 + h * 3_600 + m * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_nanos(nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_read_as_utc() {
        let t = parse_utc("2026-12-03T19:12:39.693260Z").unwrap();
        let since = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(since.as_secs(), 1_796_325_159);
        assert_eq!(since.subsec_micros(), 693_260);
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_utc("not a time"), None);
    }

    #[test]
    fn phases_are_the_first_start_and_join_and_the_last_of_each_task_step() {
        let killed = parse_utc("2026-12-03T19:00:00Z").unwrap();
        let log = "\
2026-12-03T18:59:59.000000Z  INFO eddy::runtime: starting application_id=\"old\"
2026-12-03T19:00:00.100000Z  INFO eddy::runtime: starting application_id=\"a\"
2026-12-03T19:00:00.400000Z  INFO assignment: task assigned thread=\"x\" task=0_0
2026-12-03T19:00:00.450000Z  INFO assignment: task assigned thread=\"x\" task=0_1
2026-12-03T19:00:00.500000Z  INFO restore: restore plan task=0_0 store=\"s\" from=1 to=2
2026-12-03T19:00:00.600000Z  INFO restore: restore plan task=0_1 store=\"s\" from=1 to=2
2026-12-03T19:00:00.700000Z  INFO task_manager: task running thread=\"x\" task=0_0 start=[Some(3)]
2026-12-03T19:00:00.800000Z  INFO task_manager: task running thread=\"x\" task=0_1 start=[Some(3)]
2026-12-03T19:00:00.900000Z  INFO process: first input record thread=\"x\" task=0_1 offset=3
2026-12-03T19:00:01.000000Z  INFO process: first input record thread=\"x\" task=0_0 offset=3
";
        let phases = Phases::parse(log, killed);
        let ms = |v: Option<f64>| v.map(|s| (s * 1_000.0).round() as u64);
        assert_eq!(
            ms(phases.started),
            Some(100),
            "the line before the kill is not this start"
        );
        assert_eq!(ms(phases.joined), Some(400));
        assert_eq!(ms(phases.stores_open), Some(600));
        assert_eq!(ms(phases.running), Some(800));
        assert_eq!(ms(phases.first_records), Some(1_000));
    }
}
