//! Chooses the consumer group protocol for `processing.group_protocol = auto` from what the
//! brokers offer.

use std::collections::BTreeMap;
use std::time::Duration;

use super::RuntimeError;
use crate::config::GroupProtocol;
use crate::kafka::TopicAdmin;

/// The broker config listing the group protocols its coordinator serves.
const PROTOCOLS_KEY: &str = "group.coordinator.rebalance.protocols";
/// The broker config that sets a consumer-protocol member's session timeout.
const SESSION_KEY: &str = "group.consumer.session.timeout.ms";

/// The protocol the stream threads join with: `configured` unless it is
/// [`GroupProtocol::Auto`], which asks the brokers (see [`choose`]).
///
/// # Errors
/// The brokers' configs cannot be read, or a topology that needs the consumer protocol
/// meets brokers that do not offer it.
pub(super) fn resolve(
    configured: GroupProtocol,
    admin: &TopicAdmin,
    member: Member,
    needs_copartitioning: bool,
) -> Result<GroupProtocol, RuntimeError> {
    if configured != GroupProtocol::Auto {
        return Ok(configured);
    }
    let configs = admin.broker_configs(&[PROTOCOLS_KEY, SESSION_KEY])?;
    let (protocol, why) = choose(&configs, member, needs_copartitioning)
        .map_err(|why| RuntimeError::Plan(vec![why]))?;
    tracing::info!(protocol = ?protocol, "group protocol chosen (processing.group_protocol = auto): {why}");
    Ok(protocol)
}

/// How the app's members join: what `auto` weighs besides the brokers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Member {
    /// `processing.session_timeout_ms`.
    pub(super) session_timeout: Duration,
    /// `processing.static_membership`.
    pub(super) static_membership: bool,
}

/// The consumer protocol when the brokers offer it (Kafka 4.0 and later), a crashed member
/// would be noticed as soon as under the classic protocol (their session timeout no longer
/// than the app's), and members are not static (the consumer protocol refuses a static
/// member restarted after kill -9 while its predecessor's session lasts, where the classic
/// protocol lets it replace the predecessor at once): its broker-side assignor moves
/// partitions in one round, where the classic protocol's cooperative rebalance needs two. A
/// topology that reads co-partitioned topics together takes it whenever it is offered.
/// Otherwise classic. Returns the choice and why, or why no protocol fits.
fn choose(
    broker: &BTreeMap<String, String>,
    member: Member,
    needs_copartitioning: bool,
) -> Result<(GroupProtocol, String), String> {
    let offered = broker.get(PROTOCOLS_KEY).is_some_and(|protocols| {
        protocols
            .split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("consumer"))
    });
    if !offered {
        if needs_copartitioning {
            return Err(format!(
                "the topology reads co-partitioned topics together (a join or merge), which needs the consumer group protocol, and the brokers do not offer it ({PROTOCOLS_KEY} = {}; Kafka 4.0 or later offers it)",
                broker.get(PROTOCOLS_KEY).map_or("absent", String::as_str)
            ));
        }
        return Ok((
            GroupProtocol::Classic,
            "the brokers do not offer the consumer protocol".to_owned(),
        ));
    }
    let ours = member.session_timeout.as_millis();
    let theirs = broker
        .get(SESSION_KEY)
        .and_then(|v| v.trim().parse::<u128>().ok());
    match theirs {
        _ if member.static_membership && !needs_copartitioning => Ok((
            GroupProtocol::Classic,
            "processing.static_membership is on: under the consumer protocol a static member restarted after a crash waits out its predecessor's session".to_owned(),
        )),
        Some(theirs) if theirs <= ours => Ok((
            GroupProtocol::Consumer,
            format!("the brokers offer it with {SESSION_KEY} = {theirs}"),
        )),
        _ if needs_copartitioning => Ok((
            GroupProtocol::Consumer,
            format!(
                "the topology reads co-partitioned topics together; a crashed instance's partitions move after the brokers' {SESSION_KEY} ({}), not processing.session_timeout_ms ({ours})",
                theirs.map_or("unknown".to_owned(), |t| format!("{t} ms"))
            ),
        )),
        _ => Ok((
            GroupProtocol::Classic,
            format!(
                "the brokers' {SESSION_KEY} ({}) is longer than processing.session_timeout_ms ({ours} ms): a crashed instance's partitions would wait that long; lower it on the brokers (and group.consumer.min.session.timeout.ms) for one-round rebalances",
                theirs.map_or("unknown".to_owned(), |t| format!("{t} ms"))
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(protocols: Option<&str>, session: Option<&str>) -> BTreeMap<String, String> {
        let mut configs = BTreeMap::new();
        if let Some(p) = protocols {
            configs.insert(PROTOCOLS_KEY.to_owned(), p.to_owned());
        }
        if let Some(s) = session {
            configs.insert(SESSION_KEY.to_owned(), s.to_owned());
        }
        configs
    }

    const DYNAMIC: Member = Member {
        session_timeout: Duration::from_secs(6),
        static_membership: false,
    };
    const STATIC: Member = Member {
        session_timeout: Duration::from_secs(60),
        static_membership: true,
    };

    #[test]
    fn auto_takes_the_consumer_protocol_only_where_a_crash_is_noticed_as_fast() {
        let chosen = |b, copartitioned| choose(&b, DYNAMIC, copartitioned).map(|(p, _)| p);
        assert_eq!(
            chosen(broker(Some("classic,consumer"), Some("6000")), false),
            Ok(GroupProtocol::Consumer)
        );
        assert_eq!(
            chosen(
                broker(Some("classic,consumer,streams"), Some("45000")),
                false
            ),
            Ok(GroupProtocol::Classic),
            "a 45 s broker session would hold a crashed instance's partitions for 45 s"
        );
        assert_eq!(
            chosen(broker(Some("classic"), Some("6000")), false),
            Ok(GroupProtocol::Classic),
            "not offered"
        );
        assert_eq!(
            chosen(broker(None, None), false),
            Ok(GroupProtocol::Classic),
            "a broker before Kafka 4.0"
        );
        assert_eq!(
            choose(
                &broker(Some("classic,consumer"), Some("6000")),
                STATIC,
                false
            )
            .map(|(p, _)| p),
            Ok(GroupProtocol::Classic),
            "a static member restarted after kill -9 would wait out its predecessor's session"
        );
    }

    #[test]
    fn auto_takes_the_consumer_protocol_for_joins_and_names_what_is_missing() {
        assert_eq!(
            choose(
                &broker(Some("classic,consumer"), Some("45000")),
                STATIC,
                true
            )
            .map(|(p, _)| p),
            Ok(GroupProtocol::Consumer)
        );
        let refused = choose(&broker(Some("classic"), None), DYNAMIC, true);
        assert!(
            refused
                .as_ref()
                .is_err_and(|why| why.contains(PROTOCOLS_KEY) && why.contains("classic")),
            "{refused:?}"
        );
    }
}
