//! A stream thread's membership of its consumer group as librdkafka holds it at this moment:
//! the check every transactional offset commit passes before it leaves the thread.
//!
//! The group coordinator fences a transactional offset commit by the member id and generation
//! it carries, but it accepts one that carries neither (generation -1, no member id, no
//! instance id) from anyone, whatever the group's state: the protocol's first versions sent
//! none. librdkafka's group metadata takes exactly that shape when it has reset both (an
//! `ILLEGAL_GENERATION` answer sets the generation to -1, a session timeout or an
//! `UNKNOWN_MEMBER_ID` answer clears the member id) and has not yet told the application,
//! which it only does inside the next poll. A thread that commits in that window, after its
//! partitions moved to another member, would have its offsets accepted: the other member then
//! runs from offsets it looked up before, on state that took this transaction in.

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

/// The consumer's member id and generation (the member epoch under the consumer protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The generation; -1 when librdkafka holds none.
    pub generation: i32,
    /// The member id; empty when librdkafka holds none.
    pub member_id: String,
}

impl Membership {
    /// True when the coordinator can fence an offset commit made with it: it names a member
    /// and a generation, so a commit from a member that lost its partitions is refused.
    pub fn fences(&self) -> bool {
        self.generation >= 0 && !self.member_id.is_empty()
    }
}

/// The membership `consumer` would commit offsets with now; `None` without a group.
#[allow(unsafe_code)] // librdkafka's documented group metadata accessors
pub fn membership<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<Membership> {
    use rdkafka::bindings as rd;
    let client = consumer.client().native_ptr();
    // SAFETY: `client` is the live handle `consumer` owns for at least this call. The metadata
    // object is a copy librdkafka allocates for the caller, read while it lives (the member id
    // is a NUL-terminated string it owns) and destroyed once, here.
    unsafe {
        let metadata = rd::rd_kafka_consumer_group_metadata(client);
        if metadata.is_null() {
            return None;
        }
        let generation = rd::rd_kafka_consumer_group_metadata_generation_id(metadata);
        let id = rd::rd_kafka_consumer_group_metadata_member_id(metadata);
        let member_id = if id.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(id).to_string_lossy().into_owned()
        };
        rd::rd_kafka_consumer_group_metadata_destroy(metadata);
        Some(Membership {
            generation,
            member_id,
        })
    }
}

/// Why a consumer may not commit offsets now ([`not_fenceable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its assignment was lost, it holds no group metadata, or its membership was reset so
    /// that the coordinator could not refuse the commit: it must start over.
    NotAMember(String),
    /// Its membership moved to another fenceable one between the two reads (a new
    /// generation): read again.
    Changed,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotAMember(why) => f.write_str(why),
            Refusal::Changed => {
                f.write_str("its membership kept changing while the commit was prepared")
            }
        }
    }
}

/// Why `consumer` may not commit offsets now, or `None` when it may: its assignment was
/// lost, it holds no membership the coordinator can fence with, or the membership changed
/// between `before` (read just before the group metadata to commit with was taken) and now.
pub fn not_fenceable<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    before: Option<&Membership>,
) -> Option<Refusal> {
    if consumer.assignment_lost() {
        return Some(Refusal::NotAMember("its assignment was lost".to_owned()));
    }
    let Some(now) = membership(consumer) else {
        return Some(Refusal::NotAMember("it holds no group metadata".to_owned()));
    };
    if !now.fences() {
        return Some(Refusal::NotAMember(format!(
            "its membership was reset (generation {}, member id `{}`), so the coordinator could not refuse the commit",
            now.generation, now.member_id
        )));
    }
    if before != Some(&now) {
        return Some(Refusal::Changed);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_member_id_with_a_generation_fences() {
        let member = |generation: i32, id: &str| Membership {
            generation,
            member_id: id.to_owned(),
        };
        assert!(member(3, "m-1").fences());
        assert!(member(0, "m-1").fences());
        assert!(!member(-1, "m-1").fences());
        assert!(!member(3, "").fences());
        assert!(!member(-1, "").fences());
    }
}
