//! librdkafka's `DescribeConsumerGroups` admin call, which rust-rdkafka does not wrap: each
//! member's client id and assigned partitions, for groups of either protocol.

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// A member's client id and its assigned `(topic, partition)`s.
pub(super) type Member = (String, Vec<(String, i32)>);

/// Describes `group` through `client`'s connections: its state name (`Stable`, `Empty`,
/// ...; `None` for a group that does not exist) and its members.
///
/// # Errors
/// No answer within `timeout`, or the coordinator refused.
#[allow(unsafe_code)] // librdkafka's documented admin API, see the SAFETY notes
pub(super) fn members<C: ConsumerContext>(
    client: &BaseConsumer<C>,
    group: &str,
    timeout: Duration,
) -> Result<(Option<String>, Vec<Member>), KafkaError> {
    let name = CString::new(group)
        .map_err(|_| KafkaError::AdminOpCreation(format!("group id {group:?} holds a NUL")))?;
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let rk = client.client().native_ptr();
    // SAFETY: `rk` is the live handle `client` owns for the whole call. The queue, options
    // and event are created here and destroyed once each before returning (the guards);
    // every pointer read out of the event (descriptions, strings, partition lists) is owned
    // by the event and read only while it lives, and each is checked for null first.
    unsafe {
        let queue = Guard(rd::rd_kafka_queue_new(rk), rd::rd_kafka_queue_destroy);
        let options = Guard(
            rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
            ),
            rd::rd_kafka_AdminOptions_destroy,
        );
        let mut errstr = [0 as std::ffi::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.0,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let mut groups = [name.as_ptr()];
        rd::rd_kafka_DescribeConsumerGroups(rk, groups.as_mut_ptr(), 1, options.0, queue.0);
        // The request timeout bounds the answer; the poll waits a little longer for it.
        let event = rd::rd_kafka_queue_poll(queue.0, timeout_ms.saturating_add(1_000));
        if event.is_null() {
            return Err(KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut));
        }
        let event = Guard(event, rd::rd_kafka_event_destroy);
        let code = rd::rd_kafka_event_error(event.0);
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(KafkaError::AdminOp(code.into()));
        }
        let result = rd::rd_kafka_event_DescribeConsumerGroups_result(event.0);
        if result.is_null() {
            return Err(KafkaError::AdminOpCreation(
                "DescribeConsumerGroups answered with another event".to_owned(),
            ));
        }
        let mut count = 0usize;
        let descriptions = rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count);
        let mut state = None;
        let mut members = Vec::new();
        for i in 0..count {
            let description = *descriptions.add(i);
            if description.is_null() {
                continue;
            }
            let error = rd::rd_kafka_ConsumerGroupDescription_error(description);
            if !error.is_null() {
                let code = rd::rd_kafka_error_code(error);
                if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND {
                    continue;
                }
                return Err(KafkaError::AdminOp(code.into()));
            }
            let name = rd::rd_kafka_consumer_group_state_name(
                rd::rd_kafka_ConsumerGroupDescription_state(description),
            );
            if !name.is_null() {
                state = Some(CStr::from_ptr(name).to_string_lossy().into_owned());
            }
            for m in 0..rd::rd_kafka_ConsumerGroupDescription_member_count(description) {
                let member = rd::rd_kafka_ConsumerGroupDescription_member(description, m);
                if member.is_null() {
                    continue;
                }
                let id = rd::rd_kafka_MemberDescription_client_id(member);
                let client_id = if id.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(id).to_string_lossy().into_owned()
                };
                let assignment = rd::rd_kafka_MemberDescription_assignment(member);
                let list = if assignment.is_null() {
                    std::ptr::null()
                } else {
                    rd::rd_kafka_MemberAssignment_partitions(assignment)
                };
                members.push((client_id, partitions(list)));
            }
        }
        Ok((state, members))
    }
}

/// The `(topic, partition)`s of a librdkafka partition list (none for a null list).
///
/// # Safety
/// `list` is null or points to a valid list that outlives the call.
#[allow(unsafe_code)]
unsafe fn partitions(list: *const rd::rd_kafka_topic_partition_list_t) -> Vec<(String, i32)> {
    if list.is_null() {
        return Vec::new();
    }
    let list = &*list;
    let count = usize::try_from(list.cnt).unwrap_or(0);
    (0..count)
        .filter_map(|i| {
            let element = &*list.elems.add(i);
            (!element.topic.is_null()).then(|| {
                (
                    CStr::from_ptr(element.topic).to_string_lossy().into_owned(),
                    element.partition,
                )
            })
        })
        .collect()
}

/// Destroys a librdkafka object with its destructor when dropped.
struct Guard<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Guard<T> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from the constructor this destructor pairs with and is
            // destroyed only here.
            unsafe { (self.1)(self.0) }
        }
    }
}
