//! The Processor API: user logic that receives records, uses state stores and forwards.

use std::marker::PhantomData;
use std::time::Duration;

use crate::record::{Record, RecordMetadata};
use crate::state::{KeyValueStore, SessionStore, StateError, VersionedStore, WindowStore};
use crate::task::context::ContextInner;
use crate::topology::erased::ErasedRecord;

/// Types that can flow through a topology as keys or values.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// What drives a punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// Wall-clock time of the machine, checked between records.
    WallClockTime,
    /// Stream time: the largest record timestamp the task has seen.
    StreamTime,
}

/// A processor failed; the runtime aborts the open transaction and stops the app, because
/// reprocessing the same record would fail the same way.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A state store operation failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The processor used a store it was not connected to when the topology was built.
    #[error("processor `{processor}` is not connected to store `{store}`; name the store when adding the processor")]
    StoreNotConnected {
        /// The processor's name.
        processor: String,
        /// The store it asked for.
        store: String,
    },
    /// A record was forwarded to a child that does not exist.
    #[error("processor `{processor}` has no child named `{child}`")]
    UnknownChild {
        /// The processor's name.
        processor: String,
        /// The child it named.
        child: String,
    },
    /// The processor's own logic failed.
    #[error("{0}")]
    User(String),
}

impl ProcessError {
    /// An error raised by processor logic.
    pub fn user(message: impl Into<String>) -> Self {
        ProcessError::User(message.into())
    }
}

/// User logic at one node of a topology.
///
/// A processor instance belongs to one task (one partition of a sub-topology) and is called
/// from one thread at a time. State lives in stores, not in the processor, so that it is
/// changelogged, checkpointed and restored.
pub trait Processor: Send + 'static {
    /// Key type of incoming records.
    type KeyIn: Data;
    /// Value type of incoming records.
    type ValueIn: Data;
    /// Key type of forwarded records.
    type KeyOut: Data;
    /// Value type of forwarded records.
    type ValueOut: Data;

    /// Called once when the task starts, after its stores are restored; schedule
    /// punctuations here.
    ///
    /// # Errors
    /// An error stops the task.
    fn init(
        &mut self,
        _ctx: &mut ProcessorContext<'_, Self::KeyOut, Self::ValueOut>,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Processes one record.
    ///
    /// # Errors
    /// An error aborts the open transaction and stops the app.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Self::KeyOut, Self::ValueOut>,
        record: Record<Self::KeyIn, Self::ValueIn>,
    ) -> Result<(), ProcessError>;

    /// Called for each punctuation scheduled in [`init`](Self::init) when it is due.
    ///
    /// # Errors
    /// An error aborts the open transaction and stops the app.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, Self::KeyOut, Self::ValueOut>,
        _kind: PunctuationType,
        _timestamp: i64,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Called in a bounded run (`processing.mode = bounded`) once the task has read its input
    /// to the run's end, before its last commit: forward what waits for time that will not
    /// come any more (open windows, unmatched join records). Processors are called in
    /// topology order, so what one forwards here reaches the next before its own call.
    ///
    /// # Errors
    /// An error aborts the open transaction and stops the app.
    fn end_of_input(
        &mut self,
        _ctx: &mut ProcessorContext<'_, Self::KeyOut, Self::ValueOut>,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Called when the task closes.
    fn close(&mut self) {}

    /// The processor's part in the task's commits when it writes to a transactional system
    /// outside Kafka (see [`two_phase`](crate::two_phase)); `None` (the default) for a
    /// processor whose effects are all in Kafka.
    fn two_phase_sink(&mut self) -> Option<&mut dyn crate::two_phase::TwoPhaseSink> {
        None
    }
}

/// What a processor can do while it runs: forward records, use stores, read metadata and time.
pub struct ProcessorContext<'a, K, V> {
    inner: &'a mut ContextInner,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> std::fmt::Debug for ProcessorContext<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorContext")
            .field("processor", &self.inner.current_node_name())
            .finish_non_exhaustive()
    }
}

impl<'a, K: Data, V: Data> ProcessorContext<'a, K, V> {
    pub(crate) fn new(inner: &'a mut ContextInner) -> Self {
        ProcessorContext {
            inner,
            _types: PhantomData,
        }
    }

    /// Sends a record to every child of this processor.
    pub fn forward(&mut self, record: Record<K, V>) {
        self.inner.forward(None, ErasedRecord::from_record(record));
    }

    /// Sends a record to the named child only.
    pub fn forward_to(&mut self, child: &str, record: Record<K, V>) {
        self.inner
            .forward(Some(child.to_owned()), ErasedRecord::from_record(record));
    }

    /// The key-value store `name`, typed as it was registered.
    ///
    /// # Errors
    /// Fails when this processor is not connected to the store or the types differ.
    pub fn key_value_store<SK: 'static, SV: 'static>(
        &mut self,
        name: &str,
    ) -> Result<KeyValueStore<'_, SK, SV>, ProcessError> {
        self.inner.key_value_store(name)
    }

    /// The window store `name`, typed as it was registered.
    ///
    /// # Errors
    /// Fails when this processor is not connected to the store, it is not a window store,
    /// or the types differ.
    pub fn window_store<SK: 'static, SV: 'static>(
        &mut self,
        name: &str,
    ) -> Result<WindowStore<'_, SK, SV>, ProcessError> {
        self.inner.window_store(name)
    }

    /// The session store `name`, typed as it was registered.
    ///
    /// # Errors
    /// Fails when this processor is not connected to the store, it is not a session store,
    /// or the types differ.
    pub fn session_store<SK: 'static, SV: 'static>(
        &mut self,
        name: &str,
    ) -> Result<SessionStore<'_, SK, SV>, ProcessError> {
        self.inner.session_store(name)
    }

    /// The versioned store `name`, typed as it was registered.
    ///
    /// # Errors
    /// Fails when this processor is not connected to the store, it is not a versioned store,
    /// or the types differ.
    pub fn versioned_store<SK: 'static, SV: 'static>(
        &mut self,
        name: &str,
    ) -> Result<VersionedStore<'_, SK, SV>, ProcessError> {
        self.inner.versioned_store(name)
    }

    /// Sends a record of other types than this processor's output to `child`, a side output
    /// added for it (late records of a windowed aggregation, for example).
    pub(crate) fn forward_side<K2: Data, V2: Data>(&mut self, child: &str, record: Record<K2, V2>) {
        self.inner
            .forward(Some(child.to_owned()), ErasedRecord::from_record(record));
    }

    /// This processor's name in the topology.
    pub(crate) fn node_name(&self) -> &str {
        self.inner.current_node_name()
    }

    /// Counts a record this processor found late (beyond its window's grace): reported per
    /// task and operator as `eddy_late_records_total`.
    pub(crate) fn count_late(&mut self) {
        self.inner.counts().late += 1;
    }

    /// Counts an advance of this processor's time by its idle-input policy: reported per
    /// task and operator as `eddy_idle_advances_total`.
    pub(crate) fn count_idle_advance(&mut self) {
        self.inner.counts().idle_advances += 1;
    }

    /// Topic, partition and offset of the input record being processed (`None` in a
    /// punctuation).
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.inner.metadata.as_ref()
    }

    /// The task's stream time: the largest record timestamp seen so far.
    pub fn stream_time(&self) -> i64 {
        self.inner.stream_time
    }

    /// The wall-clock time in milliseconds as the task sees it (the test driver controls it).
    pub fn wall_clock_time(&self) -> i64 {
        self.inner.wall_clock
    }

    /// The partition of the task running this processor.
    pub fn partition(&self) -> i32 {
        self.inner.partition
    }

    /// Schedules [`Processor::punctuate`] every `interval` of the given time kind. Call it
    /// from [`Processor::init`].
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) {
        self.inner.schedule(interval, kind);
    }
}
