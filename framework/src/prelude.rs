//! What an app author types: `use eddy::prelude::*;` brings the DSL, the Processor API, the
//! serdes, stores, the test driver and the app runner into scope.

pub use crate::config::{ConfigLoader, EddyConfig};
pub use crate::dsl::{
    BranchedKStream, Branches, Emit, GlobalKTable, JoinWindows, KGroupedStream, KStream, KTable,
    SessionWindowedKStream, SessionWindows, SlidingWindowedKStream, SlidingWindows, StreamJoined,
    StreamsBuilder, TableJoinGrace, TimeWindowedKStream, TimeWindows, Window, Windowed,
    WindowedSerde,
};
pub use crate::error::ErrorAction;
pub use crate::processor::{Data, ProcessError, Processor, ProcessorContext, PunctuationType};
pub use crate::record::{Record, RecordMetadata};
pub use crate::runtime::App;
pub use crate::serde::{
    BytesSerde, I32Serde, I64Serde, JsonSerde, Nullable, Serde, SerdeError, StringSerde, UnitSerde,
};
pub use crate::state::{KeyValueStore, SessionStore, StoreBuilder, WindowStore};
pub use crate::test_driver::TopologyTestDriver;
pub use crate::topology::{Topology, TopologyBuilder, TopologyError};
