//! The sinks against a real PostgreSQL server (started by the testkit when `make test` has not
//! started one): what a prepared transaction shows before and after its commit, how a
//! missing one is reported, upserts and deletes, errors that name what was wrong, and the
//! topic sink's generation fence.

use eddy::prelude::{I64Serde, StreamsBuilder, StringSerde, TopologyTestDriver};
use eddy::processor::Processor;
use eddy::task::TaskId;
use eddy::two_phase::{CommitId, Resolved, TwoPhaseSink};
use eddy_postgres::{Change, PostgresSink, PostgresSinkProcessor, PostgresStreamExt, Table};

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn url() -> R<String> {
    Ok(eddy_testkit::postgres_url()?)
}

fn database() -> R<postgres::Client> {
    Ok(postgres::Client::connect(&url()?, postgres::NoTls)?)
}

fn fresh_table(db: &mut postgres::Client, columns: &str) -> R<String> {
    let name = eddy_testkit::unique_name("sink").replace('-', "_");
    db.batch_execute(&format!("CREATE TABLE {name} ({columns})"))?;
    Ok(name)
}

fn commit(application: &str, sequence: u64, owner: &str) -> CommitId {
    CommitId {
        application: application.to_owned(),
        task: TaskId {
            sub_topology: 0,
            partition: 3,
        },
        sequence,
        owner: owner.to_owned(),
    }
}

/// A sink appending `(k, v)` rows to `table`.
fn append_sink(table: &str) -> R<PostgresSink<String, i64>> {
    Ok(PostgresSink::new(
        &format!("s_{table}"),
        &url()?,
        Table::append(table, &["k", "v"])?,
        |k: &String, v: &i64| Some(Change::Row(vec![k.as_str().into(), (*v).into()])),
    )?)
}

/// A processor of `sink` with `records` buffered.
fn buffered(
    sink: &PostgresSink<String, i64>,
    records: &[(&str, i64)],
) -> R<PostgresSinkProcessor<String, i64>> {
    let mut processor = sink.processor();
    for (k, v) in records {
        processor.write(&(*k).to_owned(), v)?;
    }
    Ok(processor)
}

fn rows(db: &mut postgres::Client, table: &str) -> R<Vec<(String, i64)>> {
    Ok(db
        .query(&format!("SELECT k, v FROM {table} ORDER BY k, v"), &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

#[test]
fn prepared_rows_stay_invisible_until_committed_and_vanish_when_rolled_back() {
    let mut db = database().unwrap();
    let table = fresh_table(&mut db, "k text NOT NULL, v bigint NOT NULL").unwrap();
    let app = eddy_testkit::unique_name("app");
    let sink = append_sink(&table).unwrap();

    let mut first = buffered(&sink, &[("a", 1), ("b", 2)]).unwrap();
    let one = commit(&app, 1, "o1");
    assert!(first.prepare(&one).unwrap(), "rows were buffered");
    assert!(
        rows(&mut db, &table).unwrap().is_empty(),
        "prepared rows are not visible"
    );
    assert_eq!(first.prepared(&app, one.task).unwrap(), vec![one.clone()]);
    assert!(
        first.oldest_prepared_age(&app).unwrap().is_some(),
        "a prepared transaction has an age"
    );
    assert!(!first.is_committed(&one).unwrap());
    assert_eq!(first.commit(&one).unwrap(), Resolved::Done);
    assert_eq!(
        rows(&mut db, &table).unwrap(),
        vec![("a".into(), 1), ("b".into(), 2)]
    );
    assert!(
        first.is_committed(&one).unwrap(),
        "the commits table names it"
    );
    assert_eq!(
        first.commit(&one).unwrap(),
        Resolved::Missing,
        "already resolved"
    );
    assert!(first.prepared(&app, one.task).unwrap().is_empty());
    assert_eq!(first.oldest_prepared_age(&app).unwrap(), None);

    let mut second = buffered(&sink, &[("c", 3)]).unwrap();
    let two = commit(&app, 2, "o1");
    assert!(second.prepare(&two).unwrap());
    assert_eq!(second.rollback(&two).unwrap(), Resolved::Done);
    assert_eq!(
        rows(&mut db, &table).unwrap().len(),
        2,
        "rolled back rows never appear"
    );
    assert!(!second.is_committed(&two).unwrap());
    assert!(
        !second.prepare(&commit(&app, 3, "o1")).unwrap(),
        "nothing buffered: nothing prepared"
    );
}

#[test]
fn another_sessions_prepared_transaction_is_listed_and_committed_by_id() {
    let mut db = database().unwrap();
    let table = fresh_table(&mut db, "k text NOT NULL, v bigint NOT NULL").unwrap();
    let app = eddy_testkit::unique_name("app");
    let sink = append_sink(&table).unwrap();
    // An owner that prepared and then went away (its session dropped).
    let gone = commit(&app, 7, "dead");
    {
        let mut owner = buffered(&sink, &[("x", 7)]).unwrap();
        assert!(owner.prepare(&gone).unwrap());
        owner.close();
    }
    let mut next = buffered(&sink, &[]).unwrap();
    assert_eq!(next.prepared(&app, gone.task).unwrap(), vec![gone.clone()]);
    let other_task = TaskId {
        sub_topology: 0,
        partition: 4,
    };
    assert!(
        next.prepared(&app, other_task).unwrap().is_empty(),
        "listed per task"
    );
    assert_eq!(next.commit(&gone).unwrap(), Resolved::Done);
    assert_eq!(rows(&mut db, &table).unwrap(), vec![("x".into(), 7)]);
}

#[test]
fn an_upsert_table_keeps_the_last_value_per_key_and_deletes() {
    let mut db = database().unwrap();
    let table = fresh_table(&mut db, "k text PRIMARY KEY, v bigint NOT NULL").unwrap();
    let app = eddy_testkit::unique_name("app");
    let sink = PostgresSink::new(
        &format!("s_{table}"),
        &url().unwrap(),
        Table::upsert(&table, &["k", "v"], &["k"]).unwrap(),
        |k: &String, v: &i64| {
            Some(if *v < 0 {
                Change::Delete(vec![k.as_str().into()])
            } else {
                Change::Row(vec![k.as_str().into(), (*v).into()])
            })
        },
    )
    .unwrap();
    let mut p = buffered(&sink, &[("a", 1), ("b", 1), ("a", 2), ("c", 5)]).unwrap();
    let one = commit(&app, 1, "o");
    assert!(p.prepare(&one).unwrap());
    assert_eq!(p.commit(&one).unwrap(), Resolved::Done);
    let mut p = buffered(&sink, &[("b", -1), ("c", 6)]).unwrap();
    let two = commit(&app, 2, "o");
    assert!(p.prepare(&two).unwrap());
    assert_eq!(p.commit(&two).unwrap(), Resolved::Done);
    assert_eq!(
        rows(&mut db, &table).unwrap(),
        vec![("a".into(), 2), ("c".into(), 6)]
    );
}

#[test]
fn failures_name_the_table_and_what_was_wrong() {
    let mut db = database().unwrap();
    let table = fresh_table(&mut db, "k text NOT NULL, v integer NOT NULL").unwrap();
    let app = eddy_testkit::unique_name("app");
    let sink = append_sink(&table).unwrap();
    // 2^40 does not fit an integer column: the data's fault, not the connection's.
    let mut p = buffered(&sink, &[("big", 1 << 40)]).unwrap();
    let e = p.prepare(&commit(&app, 1, "o")).unwrap_err();
    assert!(!e.transient, "{e}");
    assert!(e.message.contains(&table), "{e}");
    assert!(
        p.prepared(&app, commit(&app, 1, "o").task)
            .unwrap()
            .is_empty(),
        "nothing left prepared"
    );

    let long = "x".repeat(190);
    let mut p = buffered(&sink, &[("a", 1)]).unwrap();
    let e = p.prepare(&commit(&long, 1, "o")).unwrap_err();
    assert!(!e.transient && e.message.contains("at most 199"), "{e}");

    assert!(PostgresSink::new(
        "a@b",
        &url().unwrap(),
        Table::append("t", &["k"]).unwrap(),
        |_: &String, _: &i64| None
    )
    .is_err());
    assert!(PostgresSink::new(
        "s",
        "not a url",
        Table::append("t", &["k"]).unwrap(),
        |_: &String, _: &i64| None
    )
    .is_err());
}

#[test]
fn an_unreachable_server_is_a_transient_failure() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = PostgresSink::new(
        "unreachable",
        &format!("postgres://eddy@127.0.0.1:{closed}/postgres?connect_timeout=2"),
        Table::append("t", &["k", "v"]).unwrap(),
        |k: &String, v: &i64| Some(Change::Row(vec![k.as_str().into(), (*v).into()])),
    )
    .unwrap();
    let mut p = buffered(&sink, &[("a", 1)]).unwrap();
    let e = p.prepare(&commit("app", 1, "o")).unwrap_err();
    assert!(
        e.transient,
        "a connection failure is worth another try: {e}"
    );
}

#[test]
fn the_topology_test_driver_commits_a_two_phase_sink_after_each_record() {
    let mut db = database().unwrap();
    let table = fresh_table(&mut db, "k text NOT NULL, v bigint NOT NULL").unwrap();
    let sink = PostgresSink::new(
        &format!("s_{table}"),
        &url().unwrap(),
        Table::append(&table, &["k", "v"]).unwrap(),
        |k: &String, v: &i64| Some(Change::Row(vec![k.as_str().into(), (*v * 10).into()])),
    )
    .unwrap();
    let builder = StreamsBuilder::new();
    builder
        .stream("in", StringSerde, I64Serde)
        .to_postgres(&sink);
    let mut driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    for (i, k) in ["a", "b"].iter().enumerate() {
        driver
            .pipe_input(
                "in",
                &StringSerde,
                &I64Serde,
                &(*k).to_owned(),
                &(i as i64),
                0,
            )
            .unwrap();
        assert_eq!(
            rows(&mut db, &table).unwrap().len(),
            i + 1,
            "visible after each record's commit"
        );
    }
    assert_eq!(
        rows(&mut db, &table).unwrap(),
        vec![("a".into(), 0), ("b".into(), 10)]
    );
}
