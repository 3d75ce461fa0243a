//! A topic sink's session with PostgreSQL: taking a partition over (raising its generation,
//! reading its next offset) and writing a batch with the offsets it advances, fenced by the
//! generations it owns.

use std::collections::{BTreeMap, HashMap};

use postgres::{Client, Statement};

use super::{TopicSink, OFFSETS_TABLE};
use crate::connect::{open_session, ConnectError};
use crate::error::PostgresError;
use crate::table::Change;

/// One assigned partition.
#[derive(Debug, Clone, Copy)]
pub(super) struct Owned {
    pub(super) generation: i64,
    /// The next offset to write (PostgreSQL's, then the batch's).
    pub(super) next: i64,
}

/// A session with the sink's statements.
pub(super) struct Session {
    client: Client,
    statements: HashMap<(bool, usize), Statement>,
}

impl Session {
    pub(super) fn open<K, V>(sink: &TopicSink<K, V>) -> Result<Session, PostgresError> {
        let create_table = format!(
            "CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (sink text NOT NULL, topic text NOT NULL, \
             partition integer NOT NULL, next_offset bigint NOT NULL, generation bigint NOT NULL, \
             PRIMARY KEY (sink, topic, partition))"
        );
        let opened = open_session(
            &sink.url,
            &sink.tls,
            "SET lock_timeout = '10s'",
            &create_table,
        );
        let client = match opened {
            Ok(client) => client,
            Err(ConnectError::Database { what, source }) => {
                return Err(PostgresError::Database {
                    sink: sink.name.clone(),
                    what: what.to_owned(),
                    source,
                })
            }
            Err(ConnectError::Tls(reason)) => {
                return Err(PostgresError::Config {
                    sink: sink.name.clone(),
                    reason,
                })
            }
        };
        Ok(Session {
            client,
            statements: HashMap::new(),
        })
    }

    /// Raises the partition's generation and reads its next offset (waiting for an older
    /// owner's open transaction, which holds the row).
    pub(super) fn take_over<K, V>(
        &mut self,
        sink: &TopicSink<K, V>,
        partition: i32,
    ) -> Result<Owned, PostgresError> {
        let row = self
            .client
            .query_one(
                &format!(
                    "INSERT INTO {OFFSETS_TABLE} (sink, topic, partition, next_offset, generation) VALUES ($1, $2, $3, 0, 1) \
                     ON CONFLICT (sink, topic, partition) DO UPDATE SET generation = {OFFSETS_TABLE}.generation + 1 \
                     RETURNING next_offset, generation"
                ),
                &[&sink.name, &sink.topic, &partition],
            )
            .map_err(|source| PostgresError::Database {
                sink: sink.name.clone(),
                what: format!("taking over {} [{partition}]", sink.topic),
                source,
            })?;
        Ok(Owned {
            next: row.get(0),
            generation: row.get(1),
        })
    }

    /// Writes `batch` and the `advanced` offsets in one transaction, fenced by the owned
    /// generations.
    pub(super) fn write<K, V>(
        &mut self,
        sink: &TopicSink<K, V>,
        owned: &BTreeMap<i32, Owned>,
        batch: &[Change],
        advanced: &BTreeMap<i32, i64>,
    ) -> Result<(), PostgresError> {
        let database = |what: String| {
            let name = sink.name.clone();
            move |source| PostgresError::Database {
                sink: name,
                what,
                source,
            }
        };
        let mut fenced = None;
        let outcome = (|| -> Result<(), postgres::Error> {
            self.client.batch_execute("BEGIN")?;
            for (partition, next) in advanced {
                let mine = owned.get(partition).map_or(-1, |o| o.generation);
                let row = self.client.query_one(
                    &format!(
                        "WITH updated AS (UPDATE {OFFSETS_TABLE} SET next_offset = $4 \
                         WHERE sink = $1 AND topic = $2 AND partition = $3 AND generation = $5 RETURNING 1) \
                         SELECT (SELECT count(*) FROM updated), \
                         (SELECT generation FROM {OFFSETS_TABLE} WHERE sink = $1 AND topic = $2 AND partition = $3)"
                    ),
                    &[&sink.name, &sink.topic, partition, next, &mine],
                )?;
                let updated: i64 = row.get(0);
                if updated == 0 {
                    let current: Option<i64> = row.get(1);
                    fenced = Some((*partition, mine, current.unwrap_or(-1)));
                    return Ok(());
                }
            }
            sink.table
                .apply(&mut self.client, &mut self.statements, batch)?;
            self.client.batch_execute("COMMIT")
        })();
        if (outcome.is_err() || fenced.is_some()) && !self.client.is_closed() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
        outcome.map_err(database(format!("writing {} changes", batch.len())))?;
        if let Some((partition, mine, current)) = fenced {
            return Err(PostgresError::Fenced {
                sink: sink.name.clone(),
                topic: sink.topic.clone(),
                partition,
                mine,
                current,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Table;
    use eddy::serde::StringSerde;

    #[test]
    fn a_newer_owners_generation_refuses_an_older_owners_batch() {
        let url = eddy_testkit::postgres_url().expect("the test needs PostgreSQL");
        let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connecting");
        let table = eddy_testkit::unique_name("fence").replace('-', "_");
        db.batch_execute(&format!("CREATE TABLE {table} (k text NOT NULL)"))
            .expect("creating the table");
        let sink = TopicSink::new(
            &table,
            &url,
            "orders",
            "127.0.0.1:1",
            Table::append(&table, &["k"]).expect("table"),
            StringSerde,
            StringSerde,
            |k: &String, _: &String| Some(Change::Row(vec![k.as_str().into()])),
        )
        .expect("sink");
        let (mut old, mut new) = (
            Session::open(&sink).expect("session"),
            Session::open(&sink).expect("session"),
        );
        let first = old.take_over(&sink, 0).expect("take over");
        assert_eq!((first.generation, first.next), (1, 0));
        let second = new.take_over(&sink, 0).expect("take over");
        assert_eq!((second.generation, second.next), (2, 0));

        let batch = vec![Change::Row(vec!["a".into()])];
        let advanced = BTreeMap::from([(0, 1)]);
        let refused = old.write(&sink, &BTreeMap::from([(0, first)]), &batch, &advanced);
        match refused {
            Err(PostgresError::Fenced { mine, current, .. }) => assert_eq!((mine, current), (1, 2)),
            other => panic!("the older owner's batch must be fenced: {other:?}"),
        }
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .expect("count")
            .get(0);
        assert_eq!(n, 0, "nothing of a fenced batch is written");

        new.write(&sink, &BTreeMap::from([(0, second)]), &batch, &advanced)
            .expect("the owner writes");
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .expect("count")
            .get(0);
        assert_eq!(n, 1);
        let third = old.take_over(&sink, 0).expect("take over again");
        assert_eq!(
            (third.generation, third.next),
            (3, 1),
            "rows and offset moved together"
        );
    }
}
