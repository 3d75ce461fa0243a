//! Maps librdkafka errors to the [`ErrorAction`] the runtime takes.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::ErrorAction;

/// Classifies a Kafka client error into the action the runtime must take.
///
/// Transaction API errors carry librdkafka's own flags and those decide: fenced or
/// producer-epoch errors mean another instance owns the transactional id (rejoin), a producer
/// that lost its sequence state is replaced (rejoin), other fatal errors stop the instance,
/// `txn_requires_abort` aborts and reprocesses, retriable ones retry. An error with no flag
/// is treated as fatal, as librdkafka documents.
pub fn classify(err: &KafkaError) -> ErrorAction {
    match err {
        KafkaError::Transaction(rd) => classify_transaction(
            rd.code(),
            TxnFlags {
                fatal: rd.is_fatal(),
                retriable: rd.is_retriable(),
                requires_abort: rd.txn_requires_abort(),
            },
        ),
        other => match other.rdkafka_error_code() {
            Some(code) if is_fencing(code) => ErrorAction::Rejoin,
            Some(code) if is_transient(code) => ErrorAction::Retry,
            // Every retry would meet it again (a record too large for its topic, say).
            Some(code) if never_passes(other, code) => ErrorAction::Fatal,
            Some(_) => ErrorAction::AbortTransaction,
            None => ErrorAction::Fatal,
        },
    }
}

/// True for an error with `code` that every retry meets again: a deterministic produce error
/// ([`super::is_deterministic`]). An unknown partition counts only when a send met it: out
/// of a metadata, watermark or offset call it means a topic whose metadata has not reached
/// every broker yet, or a partition just revoked, which passes.
fn never_passes(err: &KafkaError, code: RDKafkaErrorCode) -> bool {
    super::is_deterministic(code)
        && (code != RDKafkaErrorCode::UnknownPartition
            || matches!(err, KafkaError::MessageProduction(_)))
}

/// The flags librdkafka sets on an error of its transaction API.
#[derive(Debug, Clone, Copy)]
struct TxnFlags {
    fatal: bool,
    retriable: bool,
    requires_abort: bool,
}

/// The action for a transaction API error with `code` and `flags`.
///
/// A fatal error that only says the producer's sequence state went out of step with a
/// partition leader (raised when a leader moved while batches were in flight) is fatal for
/// that producer, not for the thread: the thread starts over with a new producer, whose
/// registration aborts the open transaction, as it does after fencing.
fn classify_transaction(code: RDKafkaErrorCode, flags: TxnFlags) -> ErrorAction {
    if is_fencing(code) || (flags.fatal && lost_sequence_state(code)) {
        ErrorAction::Rejoin
    } else if flags.fatal {
        ErrorAction::Fatal
    } else if flags.requires_abort {
        ErrorAction::AbortTransaction
    } else if flags.retriable {
        ErrorAction::Retry
    } else {
        ErrorAction::Fatal
    }
}

/// True for a consumer error that only reports a condition the client recovers from by itself
/// (a lost or refused broker connection, a leader moving, a partition end): the reader logs it
/// and polls on. librdkafka hands these out of *every* consumer's poll while a broker restarts;
/// errors it cannot recover from arrive as [`KafkaError::MessageConsumptionFatal`].
pub fn is_report(err: &KafkaError) -> bool {
    matches!(
        err,
        KafkaError::MessageConsumption(_) | KafkaError::PartitionEOF(_)
    )
}

/// Errors of an idempotent producer whose sequence numbers no longer match the leader's.
fn lost_sequence_state(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::DuplicateSequenceNumber
    )
}

fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::InvalidProducerIdMapping
            | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress
    )
}

fn is_transient(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::QueueFull
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::CoordinatorLoadInProgress
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::ConcurrentTransactions
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::UnstableOffsetCommit
            // What a broker restart or a leader move looks like from a client.
            | RDKafkaErrorCode::DestroyBroker
            | RDKafkaErrorCode::TimedOutQueue
            | RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::NotEnoughReplicas
            | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
            | RDKafkaErrorCode::KafkaStorageError
            | RDKafkaErrorCode::FencedLeaderEpoch
            | RDKafkaErrorCode::UnknownLeaderEpoch
            | RDKafkaErrorCode::OffsetNotAvailable
            | RDKafkaErrorCode::PreferredLeaderNotAvailable
            | RDKafkaErrorCode::NotController
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_codes_mean_rejoin() {
        let err = KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced);
        assert_eq!(classify(&err), ErrorAction::Rejoin);
        let err = KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress);
        assert_eq!(classify(&err), ErrorAction::Rejoin);
    }

    #[test]
    fn lost_connections_are_reports_and_fatal_consumer_errors_are_not() {
        let lost = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(is_report(&lost));
        assert!(is_report(&KafkaError::PartitionEOF(3)));
        let fatal = KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::Fatal);
        assert!(!is_report(&fatal));
    }

    #[test]
    fn a_producer_that_lost_its_sequence_state_starts_over_and_other_fatal_errors_stop() {
        // librdkafka raises these as fatal transaction errors after a leader moved while
        // batches were in flight: the producer is unusable, its open transaction is aborted
        // by the next producer with the same transactional id, and nothing was committed.
        let flags = TxnFlags {
            fatal: true,
            retriable: false,
            requires_abort: false,
        };
        for code in [
            RDKafkaErrorCode::OutOfOrderSequenceNumber,
            RDKafkaErrorCode::UnknownProducerId,
            RDKafkaErrorCode::DuplicateSequenceNumber,
        ] {
            assert_eq!(
                classify_transaction(code, flags),
                ErrorAction::Rejoin,
                "{code:?}"
            );
        }
        assert_eq!(
            classify_transaction(RDKafkaErrorCode::UnsupportedVersion, flags),
            ErrorAction::Fatal
        );
        let abortable = TxnFlags {
            fatal: false,
            retriable: false,
            requires_abort: true,
        };
        assert_eq!(
            classify_transaction(RDKafkaErrorCode::OutOfOrderSequenceNumber, abortable),
            ErrorAction::AbortTransaction
        );
    }

    #[test]
    fn transient_codes_mean_retry() {
        let err = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
        assert_eq!(classify(&err), ErrorAction::Retry);
    }

    #[test]
    fn other_broker_errors_abort_and_errors_without_code_are_fatal() {
        let err = KafkaError::MessageProduction(RDKafkaErrorCode::InvalidTransactionalState);
        assert_eq!(classify(&err), ErrorAction::AbortTransaction);
        let err = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(classify(&err), ErrorAction::Fatal, "no retry can send it");
        let err = KafkaError::MetadataFetch(RDKafkaErrorCode::DestroyBroker);
        assert_eq!(classify(&err), ErrorAction::Retry, "a broker restarting");
        assert_eq!(classify(&KafkaError::Canceled), ErrorAction::Fatal);
    }
}
