//! Type erasure at node boundaries: records and processors of any key and value type.

use std::any::{Any, TypeId};

use crate::processor::{Data, ProcessError, Processor, ProcessorContext, PunctuationType};
use crate::record::{Headers, Record};
use crate::task::context::ContextInner;

/// The identity and readable name of a Rust type, for build-time type checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeInfo {
    id: TypeId,
    name: &'static str,
}

impl TypeInfo {
    /// The [`TypeInfo`] of `T`.
    pub fn of<T: 'static>() -> Self {
        TypeInfo {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }

    /// The type's readable name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// A value of some [`Data`] type that can be cloned without knowing the type.
pub(crate) trait AnyData: Send {
    fn clone_box(&self) -> Box<dyn AnyData>;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Data> AnyData for T {
    fn clone_box(&self) -> Box<dyn AnyData> {
        Box::new(self.clone())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A record whose key and value types are known only to the nodes at either end of an edge.
pub(crate) struct ErasedRecord {
    pub key: Box<dyn AnyData>,
    pub value: Box<dyn AnyData>,
    pub timestamp: i64,
    pub headers: Headers,
}

impl Clone for ErasedRecord {
    fn clone(&self) -> Self {
        ErasedRecord {
            key: self.key.clone_box(),
            value: self.value.clone_box(),
            timestamp: self.timestamp,
            headers: self.headers.clone(),
        }
    }
}

impl ErasedRecord {
    pub(crate) fn from_record<K: Data, V: Data>(record: Record<K, V>) -> Self {
        ErasedRecord {
            key: Box::new(record.key),
            value: Box::new(record.value),
            timestamp: record.timestamp,
            headers: record.headers,
        }
    }

    /// Recovers the typed record; `None` when the types differ (prevented at build time).
    pub(crate) fn into_record<K: Data, V: Data>(self) -> Option<Record<K, V>> {
        let key = self.key.into_any().downcast::<K>().ok()?;
        let value = self.value.into_any().downcast::<V>().ok()?;
        Some(Record {
            key: *key,
            value: *value,
            timestamp: self.timestamp,
            headers: self.headers,
        })
    }
}

/// A processor behind a type-erased interface, as the task runs it.
pub(crate) trait ErasedProcessor: Send {
    fn init(&mut self, ctx: &mut ContextInner) -> Result<(), ProcessError>;
    fn process(&mut self, ctx: &mut ContextInner, record: ErasedRecord)
        -> Result<(), ProcessError>;
    fn punctuate(
        &mut self,
        ctx: &mut ContextInner,
        kind: PunctuationType,
        timestamp: i64,
    ) -> Result<(), ProcessError>;
    fn end_of_input(&mut self, ctx: &mut ContextInner) -> Result<(), ProcessError>;
    fn close(&mut self);
    fn two_phase_sink(&mut self) -> Option<&mut dyn crate::two_phase::TwoPhaseSink>;
}

/// Adapts a typed [`Processor`] to [`ErasedProcessor`].
pub(crate) struct Erased<P>(pub P);

impl<P: Processor> ErasedProcessor for Erased<P> {
    fn init(&mut self, ctx: &mut ContextInner) -> Result<(), ProcessError> {
        self.0.init(&mut ProcessorContext::new(ctx))
    }

    fn process(
        &mut self,
        ctx: &mut ContextInner,
        record: ErasedRecord,
    ) -> Result<(), ProcessError> {
        let record = record
            .into_record::<P::KeyIn, P::ValueIn>()
            .ok_or_else(|| {
                ProcessError::user(format!(
                    "record types differ from ({}, {}) expected by processor `{}`",
                    std::any::type_name::<P::KeyIn>(),
                    std::any::type_name::<P::ValueIn>(),
                    ctx.current_node_name()
                ))
            })?;
        self.0.process(&mut ProcessorContext::new(ctx), record)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ContextInner,
        kind: PunctuationType,
        timestamp: i64,
    ) -> Result<(), ProcessError> {
        self.0
            .punctuate(&mut ProcessorContext::new(ctx), kind, timestamp)
    }

    fn end_of_input(&mut self, ctx: &mut ContextInner) -> Result<(), ProcessError> {
        self.0.end_of_input(&mut ProcessorContext::new(ctx))
    }

    fn close(&mut self) {
        self.0.close();
    }

    fn two_phase_sink(&mut self) -> Option<&mut dyn crate::two_phase::TwoPhaseSink> {
        self.0.two_phase_sink()
    }
}
