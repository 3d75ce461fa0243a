//! A test app: word counts (as wordcount computes them) written both to the output topic and,
//! as rows `(word, count)`, to the PostgreSQL table `PG_TABLE` at `PG_URL`. With
//! `PG_SINK=two_phase` (the default) through the exactly-once two-phase sink; with
//! `PG_SINK=autocommit` through a sink that inserts each row at once, outside any
//! transaction (what exactly-once tests compare against); `PG_CRASH_AFTER_ROWS=n` makes that
//! sink abort the process right after its n-th row, before the Kafka commit of the record
//! that made it. Takes wordcount's flags.

use clap::Parser;
use eddy::prelude::*;
use eddy_integration_tests::TestAppArgs;
use eddy_postgres::{Change, PostgresSink, PostgresStreamExt, Table};

/// Inserts each row as it comes, in autocommit: a crash repeats the rows of the commit it
/// interrupted.
struct Autocommit {
    url: String,
    table: String,
    client: Option<postgres::Client>,
    rows: u64,
    crash_after: Option<u64>,
}

impl Processor for Autocommit {
    type KeyIn = String;
    type ValueIn = i64;
    type KeyOut = ();
    type ValueOut = ();

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<String, i64>,
    ) -> Result<(), ProcessError> {
        if self.client.is_none() {
            let client = postgres::Client::connect(&self.url, postgres::NoTls)
                .map_err(|e| ProcessError::user(e.to_string()))?;
            self.client = Some(client);
        }
        let Some(client) = self.client.as_mut() else {
            return Ok(());
        };
        client
            .execute(
                &format!("INSERT INTO {} (word, count) VALUES ($1, $2)", self.table),
                &[&record.key, &record.value],
            )
            .map_err(|e| ProcessError::user(e.to_string()))?;
        self.rows += 1;
        if self.crash_after == Some(self.rows) {
            eprintln!(
                "pg-wordcount: aborting after row {} of the autocommit sink",
                self.rows
            );
            std::process::abort();
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = TestAppArgs::parse();
    let config = args.eddy.loader().load()?;
    let url = std::env::var("PG_URL").map_err(|_| anyhow::anyhow!("PG_URL names the database"))?;
    let table =
        std::env::var("PG_TABLE").map_err(|_| anyhow::anyhow!("PG_TABLE names the table"))?;
    let builder = StreamsBuilder::new();
    let counts = builder
        .stream(&args.input_topic, UnitSerde, StringSerde)
        .flat_map_values(|line: String| wordcount::words(&line))
        .select_key(|_: &(), word: &String| word.clone())
        .group_by_key(StringSerde, StringSerde)
        .count(wordcount::COUNTS_STORE)
        .to_stream()
        .flat_map_values(|count: Option<i64>| count);
    counts.map_values(|count: i64| count.to_string()).to(
        &args.output_topic,
        StringSerde,
        StringSerde,
    );
    match std::env::var("PG_SINK").as_deref() {
        Ok("autocommit") => {
            let _ = counts.process(
                "autocommit-sink",
                move || Autocommit {
                    url: url.clone(),
                    table: table.clone(),
                    client: None,
                    rows: 0,
                    crash_after: std::env::var("PG_CRASH_AFTER_ROWS")
                        .ok()
                        .and_then(|n| n.parse().ok()),
                },
                &[],
            );
        }
        _ => {
            let sink = PostgresSink::new(
                "counts",
                &url,
                Table::append(&table, &["word", "count"])?,
                |word: &String, count: &i64| {
                    Some(Change::Row(vec![word.as_str().into(), (*count).into()]))
                },
            )?;
            counts.to_postgres(&sink);
        }
    }
    App::new(builder.build()?, config).run()?;
    Ok(())
}
