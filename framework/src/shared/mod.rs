//! What a running instance's runtime, ops server and telemetry share, below all three: the
//! topic plan, the metrics and the status of its threads and tasks.

mod histogram;
mod memory;
mod metrics;
mod plan;
mod status;

pub use histogram::HistogramSnapshot;
pub(crate) use histogram::BUCKETS as HISTOGRAM_BUCKETS;
pub(crate) use memory::MemoryParts;
pub use memory::MemoryReading;
pub(crate) use metrics::Metrics;
pub use metrics::MetricsSnapshot;
pub(crate) use plan::{plan, Plan};
pub use status::{
    StandbyStatus, StateSource, Status, StoreReplay, TaskState, TaskStatus, ThreadStatus,
};
