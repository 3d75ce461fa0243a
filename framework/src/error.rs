//! The recovery action that every Eddy error carries.

use std::fmt;

/// What the runtime must do about an error.
///
/// Every error type in Eddy can say which of these applies, so the runtime decides recovery
/// from the error itself rather than from string matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorAction {
    /// A transient condition: retry the same operation.
    Retry,
    /// The open transaction cannot commit: abort it, rewind the inputs to the last committed
    /// position, discard uncommitted state, and process again.
    AbortTransaction,
    /// This instance lost ownership (fenced producer, lost assignment): close the affected
    /// tasks without committing, create a new producer and rejoin the group.
    Rejoin,
    /// Nothing can recover inside this process: stop and report.
    Fatal,
}

impl fmt::Display for ErrorAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorAction::Retry => "retry",
            ErrorAction::AbortTransaction => "abort the transaction and reprocess",
            ErrorAction::Rejoin => "close tasks dirty and rejoin",
            ErrorAction::Fatal => "fatal",
        })
    }
}
