//! What a running instance's runtime, ops server and telemetry share, below all three: the
//! topic plan, the metrics and the status of its threads and tasks.

mod histogram;
mod metrics;
mod plan;
mod status;

pub use histogram::{Histogram, HistogramSnapshot, BUCKETS as HISTOGRAM_BUCKETS};
pub use metrics::{Metrics, MetricsSnapshot};
pub(crate) use plan::{plan, Plan};
pub use status::{StandbyStatus, Status, TaskState, TaskStatus, ThreadStatus};
