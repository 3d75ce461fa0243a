//! Broker faults while an app runs, on a 3-broker cluster of the test's own: clean rolling
//! restarts of every broker, kill -9 of brokers one at a time, and kill -9 of app instances.
//! No instance may stop because a broker went away, and every word's counts are exactly
//! 1, 2, ..., n.

use std::time::{Duration, Instant};

use eddy_integration_tests::{
    expected_counts, generate_lines, keep_logs, with_log_tails, AppProcess, WordcountRun,
};
use eddy_testkit::{BrokerStop, OwnCluster};

const LINES: usize = 80_000;
const INSTANCES: usize = 3;
/// Client port of the first broker; clear of the shared test broker on 9092.
const PORT: u16 = 19_092;

/// The instances' log filter unless `EDDY_TEST_RUST_LOG` says otherwise: commits at debug.
const COMMIT_LOG: &str = "info,eddy::runtime::task_manager::commit=debug";
/// Held by the test whose cluster runs.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One fault injected between two chunks of input.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Broker N: SIGKILL, then started again.
    KillBroker(u32),
    /// Every broker in turn: SIGTERM, started again, waiting for the cluster in between.
    RollingRestart,
    /// App instance N: SIGKILL, then started again.
    KillInstance(usize),
}

/// What CI runs: clean rolling restarts of every broker and kill -9 of instances.
const ROLLING: [Fault; 4] = [
    Fault::RollingRestart,
    Fault::KillInstance(0),
    Fault::RollingRestart,
    Fault::KillInstance(2),
];

/// Brokers killed with SIGKILL one at a time, a rolling restart, and instance kills.
const KILLS: [Fault; 7] = [
    Fault::KillBroker(1),
    Fault::KillBroker(2),
    Fault::KillBroker(3),
    Fault::RollingRestart,
    Fault::KillInstance(0),
    Fault::KillBroker(2),
    Fault::KillInstance(2),
];

#[test]
fn instances_ride_out_rolling_broker_restarts_counting_exactly_once() -> anyhow::Result<()> {
    ride_out(&ROLLING, PORT)
}

#[test]
fn instances_ride_out_broker_kills_and_a_rolling_restart_counting_exactly_once(
) -> anyhow::Result<()> {
    ride_out(&KILLS, PORT + 1_000)
}

/// Runs 3 wordcount instances on a 3-broker cluster of the test's own (client ports from
/// `port`) through `faults`, one after each chunk of input; no instance may stop, every count
/// must be exact.
fn ride_out(faults: &[Fault], port: u16) -> anyhow::Result<()> {
    // One cluster and its instances at a time: two at once on a small machine would test the
    // machine's overload rather than the faults.
    let _one_at_a_time = ONE_CLUSTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let cluster = OwnCluster::start(3, port, &[])?;
    let run = WordcountRun::on(cluster.kafka(), "brokerfaults", 6)?;
    let lines = generate_lines(17, LINES, 1_500);
    let expected = expected_counts(lines.iter().map(String::as_str));
    let total: u64 = expected.values().sum();
    // Every commit's offsets and changelog positions are in the logs, which a failing run
    // keeps: an exactness failure under broker faults is rare and must be explained from them.
    let log_filter = std::env::var("EDDY_TEST_RUST_LOG").unwrap_or_else(|_| COMMIT_LOG.to_owned());
    let mut apps = (0..INSTANCES)
        .map(|i| run.start(&format!("i{i}"), &[("RUST_LOG", &log_filter)]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut tail = run.kafka.tail(&run.output)?;
    let (mut broker_kills, mut broker_restarts, mut instance_kills) = (0, 0, 0);

    for (chunk, &fault) in lines.chunks(LINES / faults.len() + 1).zip(faults) {
        run.produce_lines(chunk)?;
        // Some processing before the fault; the tail read doubles as the pause.
        tail.count(Duration::from_millis(1_500))?;
        match fault {
            Fault::KillBroker(id) => {
                cluster.restart_broker(id, BrokerStop::Kill)?;
                broker_kills += 1;
            }
            Fault::RollingRestart => {
                for id in 1..=cluster.brokers() {
                    cluster.restart_broker(id, BrokerStop::Clean)?;
                    broker_restarts += 1;
                }
            }
            Fault::KillInstance(i) => {
                apps[i].kill9()?;
                apps[i].restart()?;
                instance_kills += 1;
            }
        }
        tail.count(Duration::from_millis(500))?;
        assert_all_running(&mut apps, &format!("after {fault:?}"))?;
    }
    let seen = tail
        .wait_for(total, Duration::from_secs(300))
        .map_err(|e| with_log_tails(&apps, e))?;
    assert_all_running(&mut apps, "once the output was complete")?;
    for app in &apps {
        app.ops()?
            .wait_status("/health", 200, Duration::from_secs(30))?;
    }
    run.finish_exactly(&mut apps, &expected)?;
    println!(
        "broker faults: {LINES} lines, {total} words, {seen} outputs, {broker_kills} broker kill -9s, \
         {broker_restarts} clean broker restarts, {instance_kills} instance kill -9s, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Fails naming every instance that exited by itself, with its log's tail.
fn assert_all_running(apps: &mut [AppProcess], when: &str) -> anyhow::Result<()> {
    let mut exited = Vec::new();
    for app in apps.iter_mut() {
        if let Some(status) = app.exited()? {
            exited.push(format!(
                "--- {} exited with {status}:\n{}",
                app.name(),
                app.log_tail(30)
            ));
        }
    }
    if !exited.is_empty() {
        anyhow::bail!(
            "instances stopped {when}:\n{}\n{}",
            exited.join("\n"),
            keep_logs(apps)
        );
    }
    Ok(())
}

/// A cluster id beginning with `-` (one random id in 64 does) still formats and starts.
#[test]
fn a_cluster_id_beginning_with_a_dash_starts() -> anyhow::Result<()> {
    let cluster = OwnCluster::start(
        1,
        PORT + 100,
        &[("EDDY_KAFKA_CLUSTER_ID", "-AAAAAAAAAAAAAAAAAAAAA")],
    )?;
    let topic = eddy_testkit::unique_name("dash-id");
    cluster.kafka().create_topic(&topic, 1)?;
    assert_eq!(cluster.kafka().partitions(&topic)?, 1);
    Ok(())
}

/// SIGTERM while no broker can be reached: the set-up step stops retrying and the app exits
/// cleanly once the attempt under way returns, instead of retrying until
/// `processing.restart_deadline_ms` (5 min) and then failing.
#[test]
fn sigterm_while_no_broker_can_be_reached_stops_the_app_cleanly() -> anyhow::Result<()> {
    let run = WordcountRun::new("unreachable", 1)?;
    let mut spec = run.spec("a", &[]);
    // A loopback port nothing listens on: every connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    spec.bootstrap_servers = format!("127.0.0.1:{port}");
    let mut app = AppProcess::start("a", spec)?;
    eddy_testkit::eventually(
        "the instance retrying its set-up",
        Duration::from_secs(120),
        || Ok::<bool, anyhow::Error>(app.log_text().contains("preparing the topics: retrying")),
    )
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", app.log_tail(20)))?;
    // An attempt takes up to the admin calls' 30 s; then the stop is seen.
    app.terminate(Duration::from_secs(60))?;
    let log = app.log_text();
    assert!(
        log.contains("stopped while preparing the topics"),
        "the log says why it stopped:\n{}",
        app.log_tail(20)
    );
    Ok(())
}
