//! Window definitions (tumbling and hopping time windows with grace), windowed keys and
//! their wire format.

use std::time::Duration;

use crate::serde::{Serde, SerdeError};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Fixed-size time windows aligned to the epoch: tumbling (`advance == size`) or hopping
/// (`advance < size`, so windows overlap and a record falls into `size / advance` of them).
/// A window covers `[start, end)`: the start is inclusive, the end exclusive.
///
/// A window closes once the operator's time (the largest record timestamp it has seen)
/// reaches `end + grace`. Records for a closed window are late: counted per task and
/// operator in `eddy_late_records_total`, and written to a late topic when one is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
    grace_ms: i64,
    retention_ms: Option<i64>,
}

impl TimeWindows {
    /// Tumbling windows of `size` with no grace period (records out of order by more than
    /// their window's remaining time are late); add one with [`grace`](Self::grace).
    ///
    /// # Panics
    /// When `size` is zero.
    pub fn of(size: Duration) -> Self {
        let size_ms = millis(size);
        assert!(size_ms > 0, "a window size must be at least 1 ms");
        TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms: 0,
            retention_ms: None,
        }
    }

    /// Hopping windows: a new window starts every `advance`.
    ///
    /// # Panics
    /// When `advance` is zero or larger than the size.
    #[must_use]
    pub fn advance_by(mut self, advance: Duration) -> Self {
        let advance_ms = millis(advance);
        assert!(
            advance_ms > 0 && advance_ms <= self.size_ms,
            "a window advance must be between 1 ms and the window size"
        );
        self.advance_ms = advance_ms;
        self
    }

    /// How long after its end a window still takes out-of-order records.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }

    /// Keeps windows in the store (for queries) for `retention` past their start; at least
    /// size plus grace, which is the default.
    #[must_use]
    pub fn retain(mut self, retention: Duration) -> Self {
        self.retention_ms = Some(millis(retention));
        self
    }

    /// Window size in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// Milliseconds between window starts.
    pub fn advance_ms(&self) -> i64 {
        self.advance_ms
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// How long windows are kept past their start.
    pub fn retention_ms(&self) -> i64 {
        let least = self.size_ms.saturating_add(self.grace_ms);
        self.retention_ms.map_or(least, |r| r.max(least))
    }

    /// The windows a record at `timestamp` falls into, oldest first. Starts are never
    /// negative (as in Kafka Streams), so early timestamps fall into fewer windows.
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        let first = timestamp
            .saturating_sub(self.size_ms)
            .saturating_add(self.advance_ms)
            .max(0);
        let mut start = first.div_euclid(self.advance_ms) * self.advance_ms;
        let mut out = Vec::new();
        while start <= timestamp {
            out.push(Window {
                start,
                end: start.saturating_add(self.size_ms),
            });
            start = start.saturating_add(self.advance_ms);
        }
        out
    }

    /// The latest window end at or before `time` (every window ending there or earlier is
    /// over once the operator's time minus grace reaches `time`).
    /// `i64::MIN` when no window has ended by then.
    pub(crate) fn last_end_at_or_before(&self, time: i64) -> i64 {
        if time < self.size_ms {
            return i64::MIN;
        }
        let start = time - self.size_ms;
        start.div_euclid(self.advance_ms) * self.advance_ms + self.size_ms
    }
}

/// Session windows: a key's records closer in time than an inactivity `gap` form one
/// session `[start, end]` (first and last record times, both inclusive); a record that falls
/// between two sessions merges them.
///
/// A record is late when its timestamp is older than the operator's time (largest timestamp
/// seen) minus the grace period; a session is final once the operator's time minus grace
/// passes its end plus the gap, since no on-time record can reach it any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    gap_ms: i64,
    grace_ms: i64,
    retention_ms: Option<i64>,
}

impl SessionWindows {
    /// Sessions separated by at least `gap` of inactivity, with no grace period.
    ///
    /// # Panics
    /// When `gap` is zero.
    pub fn with_gap(gap: Duration) -> Self {
        let gap_ms = millis(gap);
        assert!(gap_ms > 0, "a session gap must be at least 1 ms");
        SessionWindows {
            gap_ms,
            grace_ms: 0,
            retention_ms: None,
        }
    }

    /// How far behind the operator's time a record may be and still count.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }

    /// Keeps sessions in the store for `retention` past their end; at least gap plus grace,
    /// which is the default.
    #[must_use]
    pub fn retain(mut self, retention: Duration) -> Self {
        self.retention_ms = Some(millis(retention));
        self
    }

    /// Inactivity gap in milliseconds.
    pub fn gap_ms(&self) -> i64 {
        self.gap_ms
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// How long sessions are kept past their end.
    pub fn retention_ms(&self) -> i64 {
        let least = self.gap_ms.saturating_add(self.grace_ms);
        self.retention_ms.map_or(least, |r| r.max(least))
    }
}

/// Sliding windows of a fixed `size` whose both ends are inclusive, placed where records
/// are rather than on the epoch: every record at `t` has the window `[t - size, t]` ending at
/// it, and a window `[t + 1, t + 1 + size]` starting right after it when a record falls
/// there. Together these are every distinct set of a key's records no more than `size`
/// apart, each aggregated once (as Kafka Streams' sliding windows).
///
/// A window closes once the operator's time minus grace passes its end; a record older
/// than the operator's time minus grace is late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    size_ms: i64,
    grace_ms: i64,
}

impl SlidingWindows {
    /// Windows spanning `size` (records at most that far apart share a window), with no
    /// grace period.
    ///
    /// # Panics
    /// When `size` is zero.
    pub fn of(size: Duration) -> Self {
        let size_ms = millis(size);
        assert!(size_ms > 0, "a window size must be at least 1 ms");
        SlidingWindows {
            size_ms,
            grace_ms: 0,
        }
    }

    /// How far behind the operator's time a record may be and still count.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }

    /// The largest distance between two records of one window, in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }
}

/// A window in milliseconds since the epoch: `[start, end)` for time windows, `[start, end]`
/// for sliding windows and (first and last record) for session windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after a time window; the last millisecond of a sliding window; a
    /// session's last record time.
    pub end: i64,
}

/// A key with the window its value belongs to: the key of windowed aggregation results.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

/// Serde of windowed keys. Wire format: the inner key's bytes, then the window start and
/// end as 8-byte big-endian signed milliseconds (16 bytes after the key).
///
/// ```
/// use eddy::dsl::{Window, Windowed, WindowedSerde};
/// use eddy::serde::{Serde, StringSerde};
///
/// let serde = WindowedSerde::new(StringSerde);
/// let key = Windowed { key: "alice".to_owned(), window: Window { start: 60_000, end: 120_000 } };
/// let bytes = serde.serialize(&key)?.unwrap();
/// assert_eq!(&bytes[..5], b"alice");
/// assert_eq!(&bytes[5..13], &60_000_i64.to_be_bytes());
/// assert_eq!(serde.deserialize(Some(&bytes))?, key);
/// # Ok::<(), eddy::serde::SerdeError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowedSerde<S> {
    inner: S,
}

impl<S> WindowedSerde<S> {
    /// Windowed keys whose inner key `inner` encodes.
    pub fn new(inner: S) -> Self {
        WindowedSerde { inner }
    }
}

impl<K: 'static, S: Serde<K>> Serde<Windowed<K>> for WindowedSerde<S> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut bytes = self
            .inner
            .serialize(&value.key)?
            .ok_or_else(|| SerdeError::new("a windowed key's inner key may not be null"))?;
        bytes.extend_from_slice(&value.window.start.to_be_bytes());
        bytes.extend_from_slice(&value.window.end.to_be_bytes());
        Ok(Some(bytes))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::new("a windowed key may not be null"))?;
        let Some(split) = bytes.len().checked_sub(16) else {
            return Err(SerdeError::new(format!(
                "a windowed key needs at least 16 bytes (start and end), got {}",
                bytes.len()
            )));
        };
        let (key, times) = bytes.split_at(split);
        let time = |range: std::ops::Range<usize>| {
            <[u8; 8]>::try_from(&times[range])
                .map(i64::from_be_bytes)
                .map_err(|_| SerdeError::new("a windowed key's time is not 8 bytes"))
        };
        Ok(Windowed {
            key: self.inner.deserialize(Some(key))?,
            window: Window {
                start: time(0..8)?,
                end: time(8..16)?,
            },
        })
    }

    fn format(&self) -> String {
        format!("windowed:{}", self.inner.format())
    }
}

/// When a windowed aggregation sends its results downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emit {
    /// Every update of a window, as each record is aggregated (the default).
    #[default]
    OnUpdate,
    /// One final result per window once it closes (end plus grace), read back from the
    /// window store: nothing is buffered in memory, and what was emitted is committed with
    /// the input offsets, so each window's final result is written exactly once.
    OnWindowClose,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: i64, end: i64) -> Window {
        Window { start, end }
    }

    #[test]
    fn tumbling_windows_start_inclusive_end_exclusive() {
        let windows = TimeWindows::of(Duration::from_millis(10));
        assert_eq!(windows.windows_for(0), vec![w(0, 10)]);
        assert_eq!(windows.windows_for(9), vec![w(0, 10)]);
        assert_eq!(windows.windows_for(10), vec![w(10, 20)]);
        assert_eq!(windows.last_end_at_or_before(19), 10);
        assert_eq!(windows.last_end_at_or_before(20), 20);
        assert_eq!(windows.last_end_at_or_before(9), i64::MIN);
        assert_eq!(windows.last_end_at_or_before(i64::MIN), i64::MIN);
    }

    #[test]
    fn hopping_windows_cover_each_time_size_over_advance_times() {
        let windows =
            TimeWindows::of(Duration::from_millis(10)).advance_by(Duration::from_millis(5));
        assert_eq!(windows.windows_for(12), vec![w(5, 15), w(10, 20)]);
        assert_eq!(windows.windows_for(15), vec![w(10, 20), w(15, 25)]);
        assert_eq!(windows.windows_for(3), vec![w(0, 10)], "no negative starts");
        assert_eq!(windows.last_end_at_or_before(24), 20);
        assert_eq!(windows.last_end_at_or_before(25), 25);
    }

    #[test]
    fn retention_is_at_least_size_plus_grace() {
        let windows = TimeWindows::of(Duration::from_millis(10)).grace(Duration::from_millis(3));
        assert_eq!(windows.retention_ms(), 13);
        assert_eq!(windows.retain(Duration::from_millis(5)).retention_ms(), 13);
        assert_eq!(windows.retain(Duration::from_millis(50)).retention_ms(), 50);
    }

    #[test]
    fn windowed_keys_refuse_short_input() {
        let serde = WindowedSerde::new(crate::serde::StringSerde);
        let err = serde.deserialize(Some(b"short")).unwrap_err();
        assert!(err.to_string().contains("at least 16 bytes"), "{err}");
    }
}
