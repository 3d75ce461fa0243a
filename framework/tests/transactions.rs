//! Transactional produce against a real broker: abort, commit, fencing, last stable offset.

use eddy::kafka::OutgoingRecord;
use eddy::kafka::{KafkaSettings, OutputProducer};
use eddy::ErrorAction;
use eddy_testkit::{unique_name, Isolation, Kafka};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn send_values(
    producer: &mut OutputProducer,
    topic: &str,
    values: &[String],
) -> Result<(), eddy::kafka::ProducerError> {
    for value in values {
        producer.send(OutgoingRecord {
            topic,
            partition: Some(0),
            key: Some(value.as_bytes()),
            value: Some(value.as_bytes()),
            timestamp: None,
            headers: &[],
        })?;
    }
    Ok(())
}

/// Serves delivery reports until `n` records are acknowledged, without committing.
fn wait_delivered(producer: &OutputProducer, n: u64) -> TestResult {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while producer.delivered() < n {
        if std::time::Instant::now() > deadline {
            return Err(
                format!("only {} of {n} records acknowledged", producer.delivered()).into(),
            );
        }
        producer.poll(std::time::Duration::from_millis(100));
    }
    Ok(())
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn read_values(
    kafka: &Kafka,
    topic: &str,
    isolation: Isolation,
) -> Result<Vec<String>, eddy_testkit::TestkitError> {
    Ok(kafka
        .read_all(topic, isolation)?
        .iter()
        .map(|r| r.value_str())
        .collect())
}

#[test]
fn aborted_records_are_invisible_to_read_committed_and_visible_to_read_uncommitted() -> TestResult {
    let kafka = Kafka::shared()?;
    let topic = unique_name("txn-abort");
    kafka.create_topic(&topic, 1)?;
    let settings = KafkaSettings::new(kafka.bootstrap_servers());
    let mut producer = OutputProducer::new(&settings, &unique_name("txn-abort-id"))?;

    let aborted = values("aborted", 20);
    producer.begin()?;
    send_values(&mut producer, &topic, &aborted)?;
    // The aborted records reach the log before the abort marker does.
    wait_delivered(&producer, 20)?;
    producer.abort()?;

    let committed = values("committed", 10);
    producer.begin()?;
    send_values(&mut producer, &topic, &committed)?;
    producer.commit()?;

    let seen_committed = read_values(kafka, &topic, Isolation::ReadCommitted)?;
    assert_eq!(
        seen_committed, committed,
        "read_committed must see only the committed transaction"
    );

    let seen_uncommitted = read_values(kafka, &topic, Isolation::ReadUncommitted)?;
    let mut expected = aborted.clone();
    expected.extend(committed.iter().cloned());
    assert_eq!(
        seen_uncommitted, expected,
        "read_uncommitted sees aborted records too, in order"
    );
    Ok(())
}

#[test]
fn committed_records_are_visible_to_both_isolation_levels() -> TestResult {
    let kafka = Kafka::shared()?;
    let topic = unique_name("txn-commit");
    kafka.create_topic(&topic, 1)?;
    let settings = KafkaSettings::new(kafka.bootstrap_servers());
    let mut producer = OutputProducer::new(&settings, &unique_name("txn-commit-id"))?;

    let first = values("first", 15);
    let second = values("second", 5);
    for batch in [&first, &second] {
        producer.begin()?;
        send_values(&mut producer, &topic, batch)?;
        producer.commit()?;
    }
    let expected: Vec<String> = first.iter().chain(second.iter()).cloned().collect();
    assert_eq!(
        read_values(kafka, &topic, Isolation::ReadCommitted)?,
        expected
    );
    assert_eq!(
        read_values(kafka, &topic, Isolation::ReadUncommitted)?,
        expected
    );
    Ok(())
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first() -> TestResult {
    let kafka = Kafka::shared()?;
    let topic = unique_name("txn-fence");
    kafka.create_topic(&topic, 1)?;
    let settings = KafkaSettings::new(kafka.bootstrap_servers());
    let transactional_id = unique_name("txn-fence-id");

    let mut zombie = OutputProducer::new(&settings, &transactional_id)?;
    zombie.begin()?;
    send_values(&mut zombie, &topic, &values("zombie", 5))?;
    zombie.poll(std::time::Duration::ZERO);

    // The new owner registers the same id: the coordinator bumps the epoch and aborts the
    // zombie's open transaction.
    let mut owner = OutputProducer::new(&settings, &transactional_id)?;
    let fenced = zombie.commit();
    let err = match fenced {
        Ok(()) => return Err("the fenced producer's commit succeeded".into()),
        Err(err) => err,
    };
    assert_eq!(
        err.action,
        ErrorAction::Rejoin,
        "fencing must map to rejoin, got: {err}"
    );
    assert!(err.is_fenced());

    let owned = values("owner", 3);
    owner.begin()?;
    send_values(&mut owner, &topic, &owned)?;
    owner.commit()?;
    assert_eq!(
        read_values(kafka, &topic, Isolation::ReadCommitted)?,
        owned,
        "nothing of the fenced producer may become visible"
    );
    Ok(())
}

#[test]
fn an_open_transaction_holds_back_the_last_stable_offset() -> TestResult {
    let kafka = Kafka::shared()?;
    let topic = unique_name("txn-lso");
    kafka.create_topic(&topic, 1)?;
    let settings = KafkaSettings::new(kafka.bootstrap_servers());
    let mut producer = OutputProducer::new(&settings, &unique_name("txn-lso-id"))?;

    producer.begin()?;
    send_values(&mut producer, &topic, &values("open", 4))?;
    wait_delivered(&producer, 4)?;
    let stable = kafka.end_offsets(&topic, Isolation::ReadCommitted)?;
    let high = kafka.end_offsets(&topic, Isolation::ReadUncommitted)?;
    assert_eq!(high, vec![4], "the four records are written");
    assert_eq!(
        stable,
        vec![0],
        "read_committed end stays before the open transaction"
    );

    producer.commit()?;
    let stable = kafka.end_offsets(&topic, Isolation::ReadCommitted)?;
    let high = kafka.end_offsets(&topic, Isolation::ReadUncommitted)?;
    assert_eq!(stable, high, "after commit no transaction is open");
    assert_eq!(high, vec![5], "four records and one commit marker");
    Ok(())
}

/// The group coordinator fences a transactional offset commit by the member id and generation
/// it carries, and takes one that carries neither from anyone: here from a consumer of the
/// group that never joined it, for a partition another member owns. librdkafka holds such a
/// membership after it reset both (an illegal generation, then a lost session) until the
/// application polls, so Eddy's commit checks the membership first (`not_fenceable`), which
/// tells the two consumers apart.
#[test]
fn a_transactional_offset_commit_without_membership_is_taken_from_a_non_member() -> TestResult {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let kafka = Kafka::shared()?;
    let topic = unique_name("membership");
    let group = unique_name("membership-group");
    kafka.create_topic(&topic, 1)?;
    let member: BaseConsumer = kafka
        .config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()?;
    member.subscribe(&[&topic])?;
    eddy_testkit::eventually::<eddy_testkit::TestkitError>(
        "the member gets the partition",
        std::time::Duration::from_secs(60),
        || {
            let _ = member.poll(std::time::Duration::from_millis(100));
            Ok(member.assignment().map(|a| a.count()).unwrap_or(0) == 1)
        },
    )?;
    let joined = eddy::kafka::membership(&member).ok_or("the member has no group metadata")?;
    assert!(joined.fences(), "{joined:?}");
    assert_eq!(eddy::kafka::not_fenceable(&member, Some(&joined)), None);

    let outsider: BaseConsumer = kafka
        .config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()?;
    let reset = eddy::kafka::membership(&outsider).ok_or("the outsider has no group metadata")?;
    assert!(!reset.fences(), "{reset:?}");
    let why = eddy::kafka::not_fenceable(&outsider, Some(&reset)).ok_or("not refused")?;
    assert!(why.to_string().contains("reset"), "{why}");

    // What the check prevents: the coordinator commits the outsider's offsets.
    let mut producer = OutputProducer::new(
        &KafkaSettings::new(kafka.bootstrap_servers()),
        &unique_name("membership-txn"),
    )?;
    producer.begin()?;
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&topic, 0, Offset::Offset(42))?;
    let metadata = outsider
        .group_metadata()
        .ok_or("the outsider has no group metadata")?;
    producer.send_offsets(&offsets, metadata)?;
    producer.commit()?;
    assert_eq!(kafka.committed_offsets(&group, &topic)?, vec![Some(42)]);
    assert_eq!(member.assignment()?.count(), 1, "the member still owns it");
    Ok(())
}

/// `commit_with_offsets` puts the offsets into the transaction while the records are being
/// acknowledged; both become visible together.
#[test]
fn records_and_offsets_commit_together_when_their_waits_overlap() -> TestResult {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let kafka = Kafka::shared()?;
    let topic = unique_name("txn-overlap");
    let group = unique_name("txn-overlap-group");
    kafka.create_topic(&topic, 1)?;
    let reader: BaseConsumer = kafka.config().set("group.id", &group).create()?;
    let mut producer = OutputProducer::new(
        &KafkaSettings::new(kafka.bootstrap_servers()),
        &unique_name("txn-overlap-id"),
    )?;
    let sent = values("overlap", 50);
    producer.begin()?;
    send_values(&mut producer, &topic, &sent)?;
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&topic, 0, Offset::Offset(17))?;
    let metadata = reader.group_metadata().ok_or("no group metadata")?;
    producer.commit_with_offsets(&offsets, metadata)?;
    assert!(!producer.in_transaction());
    assert_eq!(read_values(kafka, &topic, Isolation::ReadCommitted)?, sent);
    assert_eq!(kafka.committed_offsets(&group, &topic)?, vec![Some(17)]);
    Ok(())
}

/// When the group coordinator refuses the offsets (here: a generation the group has left
/// behind), `commit_with_offsets` fails without asking for a retry, whose commit would end
/// the transaction without them, and the abort that follows leaves the records invisible.
#[test]
fn refused_offsets_leave_the_records_of_an_overlapped_commit_uncommitted() -> TestResult {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    use std::time::Duration;
    let kafka = Kafka::shared()?;
    let topic = unique_name("txn-refused");
    let group = unique_name("txn-refused-group");
    kafka.create_topic(&topic, 2)?;
    let consumer = || -> Result<BaseConsumer, rdkafka::error::KafkaError> {
        let c: BaseConsumer = kafka
            .config()
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()?;
        c.subscribe(&[&topic])?;
        Ok(c)
    };
    let first = consumer()?;
    let generation = |c: &BaseConsumer| eddy::kafka::membership(c).map_or(-1, |m| m.generation);
    eddy_testkit::eventually::<eddy_testkit::TestkitError>(
        "the first member joins",
        Duration::from_secs(60),
        || {
            let _ = first.poll(Duration::from_millis(100));
            Ok(first.assignment().map(|a| a.count()).unwrap_or(0) == 2)
        },
    )?;
    let joined = generation(&first);
    let old = first.group_metadata().ok_or("no group metadata")?;
    // A second member moves the group to a later generation.
    let second = consumer()?;
    eddy_testkit::eventually::<eddy_testkit::TestkitError>(
        "the group moves on",
        Duration::from_secs(60),
        || {
            let _ = first.poll(Duration::from_millis(50));
            let _ = second.poll(Duration::from_millis(50));
            Ok(generation(&first) > joined && generation(&second) > joined)
        },
    )?;

    let mut producer = OutputProducer::new(
        &KafkaSettings::new(kafka.bootstrap_servers()),
        &unique_name("txn-refused-id"),
    )?;
    producer.begin()?;
    send_values(&mut producer, &topic, &values("refused", 20))?;
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&topic, 0, Offset::Offset(20))?;
    let Err(err) = producer.commit_with_offsets(&offsets, old) else {
        return Err("offsets of a past generation were taken".into());
    };
    assert_eq!(err.operation, "send_offsets", "{err}");
    assert_ne!(err.action, ErrorAction::Retry, "{err}");
    producer.abort()?;
    assert_eq!(
        read_values(kafka, &topic, Isolation::ReadCommitted)?,
        Vec::<String>::new()
    );
    assert_eq!(kafka.committed_offsets(&group, &topic)?, vec![None, None]);
    Ok(())
}

/// Settings whose producers hold records back for `linger` (far longer than any wait below).
fn lingering_settings(kafka: &Kafka, linger: std::time::Duration) -> KafkaSettings {
    let mut settings = KafkaSettings::new(kafka.bootstrap_servers());
    settings
        .client_properties
        .insert("linger.ms".to_owned(), linger.as_millis().to_string());
    settings
}

/// A commit has its records sent at once: it does not wait out `linger.ms`.
#[test]
fn a_commit_does_not_wait_out_the_linger() -> TestResult {
    let kafka = Kafka::shared()?;
    let topic = unique_name("txn-linger");
    kafka.create_topic(&topic, 1)?;
    // Below the transaction timeout, which bounds a transactional producer's linger.
    let linger = std::time::Duration::from_secs(8);
    let mut producer = OutputProducer::new(
        &lingering_settings(kafka, linger),
        &unique_name("txn-linger-id"),
    )?;
    let sent = values("linger", 5);
    let started = std::time::Instant::now();
    producer.begin()?;
    send_values(&mut producer, &topic, &sent)?;
    producer.commit()?;
    assert!(
        started.elapsed() < linger / 2,
        "the commit waited {:?}, as long as the linger",
        started.elapsed()
    );
    assert_eq!(read_values(kafka, &topic, Isolation::ReadCommitted)?, sent);
    Ok(())
}
