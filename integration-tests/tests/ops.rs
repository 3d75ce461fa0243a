//! The ops HTTP server of running instances against the real broker: health, readiness,
//! Prometheus metrics (counters, latency histograms, transaction-aware lag, RocksDB memory),
//! state queries answered locally or forwarded, the ownership view, and the savepoint trigger.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use eddy_integration_tests::ops::{OpsClient, Sample};
use eddy_integration_tests::{
    eventually_every, expected_counts, generate_lines, on_timeout, WordcountRun,
};

const WAIT: Duration = Duration::from_secs(120);

fn total(samples: &[Sample]) -> f64 {
    samples.iter().map(|s| s.value).sum()
}

/// Waits until every lag sample of every instance is 0 and there is one per input partition.
fn wait_caught_up(clients: &[&OpsClient], partitions: usize) -> anyhow::Result<Vec<Sample>> {
    let mut lag = Vec::new();
    let interval = Duration::from_millis(250);
    let waited = eventually_every("lag reaching 0", WAIT, interval, || {
        lag.clear();
        for client in clients {
            lag.extend(client.samples("eddy_consumer_lag_records")?);
        }
        Ok(lag.len() == partitions && lag.iter().all(|s| s.value == 0.0))
    });
    on_timeout(waited, || {
        anyhow::bail!("lag never reached 0 on {partitions} partitions: {lag:?}")
    })?;
    Ok(lag)
}

/// The admin token of instance `b`.
const TOKEN: &str = "ops-test-token";

#[test]
fn the_ops_server_reports_health_readiness_metrics_state_and_takes_savepoints() -> anyhow::Result<()>
{
    let run = WordcountRun::new("ops", 4)?;
    let lines = generate_lines(31, 3_000, 80);
    let expected = expected_counts(lines.iter().map(String::as_str));
    let words: u64 = expected.values().sum();
    let allowed = run.dir.path().join("snapshots");
    let allowed_text = allowed.display().to_string();
    let apps = [
        run.start("a", &[])?,
        run.start(
            "b",
            &[
                ("EDDY__OPS__ADMIN_TOKEN", TOKEN),
                ("EDDY__OPS__SAVEPOINT_DIRS", &allowed_text),
            ],
        )?,
    ];
    let clients = [apps[0].ops()?, apps[1].ops()?];
    for client in &clients {
        let (status, body) = client.get_json("/health")?;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("ok")),
            "{body}"
        );
    }
    run.produce_lines(&lines)?;
    run.kafka.tail(&run.output)?.wait_for(words, WAIT)?;
    for client in &clients {
        client.wait_status("/ready", 200, WAIT)?;
    }

    // Lag: one sample per input partition (4 of the lines topic, 4 of the transactional
    // repartition topic), all 0 once everything is processed, although every committed
    // transaction left a marker after its last record.
    let lag = wait_caught_up(&[&clients[0], &clients[1]], 8)?;
    assert!(
        lag.iter().any(|s| s
            .label("topic")
            .is_some_and(|t| t.ends_with("-repartition"))),
        "{lag:?}"
    );

    // Counters and histograms: both sub-topologies' records were processed exactly once
    // across the two instances (no rebalance happened after processing started).
    let mut records_in = 0.0;
    let mut commits = 0.0;
    let mut ids = Vec::new();
    let mut memory = Vec::new();
    let mut write_buffers = 0.0;
    let mut processing_observations = 0.0;
    let mut commit_observations = 0.0;
    for client in &clients {
        records_in += total(&client.samples("eddy_records_in_total")?);
        commits += total(&client.samples("eddy_transactions_committed_total")?);
        let latency = client.samples("eddy_processing_latency_seconds_count")?;
        processing_observations += total(&latency);
        commit_observations += client
            .samples("eddy_commit_latency_seconds_bucket")?
            .iter()
            .filter(|s| s.label("le") == Some("+Inf"))
            .map(|s| s.value)
            .sum::<f64>();
        memory.extend(client.samples("eddy_rocksdb_memory_bytes")?);
        // The instance's memory by part: the resident set covers the parts it names (the
        // count tasks' memtables, summed below, live on whichever instance owns them).
        let parts = client.samples("eddy_memory_bytes")?;
        let part = |name: &str| {
            parts
                .iter()
                .find(|s| s.label("part") == Some(name))
                .map_or(-1.0, |s| s.value)
        };
        assert!(part("resident") > 0.0, "{parts:?}");
        assert!(part("resident_peak") >= part("resident"), "{parts:?}");
        write_buffers += part("rocksdb_write_buffers");
        assert!(part("kafka_fetch_queues") >= 0.0, "{parts:?}");
        assert_eq!(
            part("rest"),
            part("resident")
                - part("rocksdb_block_cache")
                - part("rocksdb_write_buffers")
                - part("kafka_fetch_queues"),
            "{parts:?}"
        );
        let ready = client.samples("eddy_ready")?;
        assert_eq!(total(&ready), 1.0);
        ids.push(
            latency[0]
                .label("instance_id")
                .unwrap_or_default()
                .to_owned(),
        );
    }
    // One sample per task with a RocksDB store (the 4 count tasks), each holding memtables.
    assert_eq!(memory.len(), 4, "{memory:?}");
    assert!(memory.iter().all(|s| s.value > 0.0), "{memory:?}");
    assert!(
        write_buffers > 0.0,
        "the instances' write buffers hold the counts"
    );
    #[allow(clippy::cast_precision_loss)]
    let processed = (lines.len() as u64 + words) as f64;
    assert!(
        records_in >= processed,
        "records in: {records_in}, at least {processed} expected"
    );
    assert!(commits > 0.0);
    assert!(
        processing_observations >= processed,
        "one processing latency per record: {processing_observations}"
    );
    assert!(commit_observations > 0.0, "commit latencies observed");

    // Ownership: both instances, with their ops addresses, share all 8 input partitions.
    let (status, view) = clients[0].get_json("/instances")?;
    assert_eq!(status, 200, "{view}");
    let members = view["ownership"]["members"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(members.len(), 2, "{view}");
    let mut owned = BTreeSet::new();
    for member in &members {
        let address = member["ops_address"].as_str().unwrap_or_default();
        assert!(
            clients.iter().any(|c| c.address == address),
            "member {member} announced an address no instance has"
        );
        for p in member["partitions"].as_array().cloned().unwrap_or_default() {
            owned.insert((p[0].as_str().unwrap_or_default().to_owned(), p[1].as_i64()));
        }
    }
    assert_eq!(owned.len(), 8, "{owned:?}");

    // State queries: every word's count, asked of each instance, matches the input and is
    // answered by the instance owning the word's partition: locally when asked there, else
    // forwarded.
    let repartition_owner: HashMap<i64, String> = members
        .iter()
        .flat_map(|m| {
            let id = m["instance"].as_str().unwrap_or_default().to_owned();
            m["partitions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p[0].as_str().is_some_and(|t| t.ends_with("-repartition")))
                .filter_map(move |p| Some((p[1].as_i64()?, id.clone())))
        })
        .collect();
    let mut forwarded = 0;
    for (asked, client) in ids.iter().zip(&clients) {
        for (word, count) in &expected {
            let (status, body) = client.get_json(&format!("/state/counts/{word}"))?;
            assert_eq!(status, 200, "{word}: {body}");
            assert_eq!(body["value"].as_u64(), Some(*count), "{word}: {body}");
            let answered = body["instance_id"].as_str().unwrap_or_default();
            let owner = body["partition"]
                .as_i64()
                .and_then(|p| repartition_owner.get(&p));
            assert_eq!(Some(answered), owner.map(String::as_str), "{word}: {body}");
            if answered != asked {
                forwarded += 1;
            }
        }
    }
    assert_eq!(
        forwarded,
        expected.len(),
        "each word is local to one instance and forwarded by the other"
    );
    let (status, body) = clients[1].get_json("/state/counts/never-seen-word")?;
    assert_eq!(status, 404, "{body}");
    assert!(body["value"].is_null(), "{body}");
    let (status, body) = clients[1].get_json("/state/nope/x")?;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("`nope`"),
        "{body}"
    );

    // Savepoints pause every instance: only a caller with the admin token, only into an
    // allowed store, only for a bounded time.
    let store = allowed;
    let post = format!("/savepoints?store={}", store.display());
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    assert_eq!(clients[1].request("POST", &post)?.status, 401, "no token");
    let elsewhere = format!(
        "/savepoints?store={}",
        run.dir.path().join("other").display()
    );
    let refused = clients[1].request_with("POST", &elsewhere, &auth)?;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let endless = clients[1].request_with("POST", &format!("{post}&timeout_secs=86400"), &auth)?;
    assert_eq!(endless.status, 400, "{}", endless.body);
    // A savepoint triggered over HTTP on one instance covers the whole app.
    let response = clients[1].request_with("POST", &post, &auth)?;
    assert_eq!(response.status, 200, "{}", response.body);
    let body: serde_json::Value = serde_json::from_str(&response.body)?;
    let path = std::path::PathBuf::from(body["path"].as_str().unwrap_or_default());
    assert!(path.join("manifest.json").is_file(), "{body}");
    assert_eq!(body["tasks"].as_u64(), Some(8), "{body}");
    let listed = eddy::snapshot::list_savepoints(
        &eddy::snapshot::DirectoryStore::new(&store),
        &run.application_id,
    )?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    Ok(())
}
