//! The exactly-once sink inside a topology: one commit's rows in one PostgreSQL transaction,
//! PREPAREd before the task's Kafka commit and COMMIT PREPAREd after it (see
//! [`eddy::two_phase`] for how the runtime drives and resolves it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eddy::processor::{Data, ProcessError, Processor, ProcessorContext};
use eddy::record::Record;
use eddy::task::TaskId;
use eddy::two_phase::{CommitId, Resolved, SinkError, TwoPhaseSink};
use postgres::{Client, Statement};

use crate::connect::{open_session, ConnectError, Tls};

use crate::error::{describe, is_transient, is_unknown_prepared};
use crate::table::{Change, Table};
use crate::PostgresError;

/// Turns a record into the change its table gets (`None`: the record changes nothing).
pub type RowMapper<K, V> = dyn Fn(&K, &V) -> Option<Change> + Send + Sync;

/// The table where each sink notes the last commit sequence per task owner, written in the
/// same prepared transaction as the rows: it tells a commit made by another instance from
/// one that was lost.
pub const COMMITS_TABLE: &str = "eddy_sink_commits";

/// How long a statement waits for a lock before the commit fails and starts over.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// An exactly-once PostgreSQL sink for a topology; add it with
/// [`PostgresStreamExt::to_postgres`](crate::PostgresStreamExt::to_postgres).
///
/// PostgreSQL needs `max_prepared_transactions` of at least the number of tasks that write
/// through the sink at once (each holds at most one prepared transaction, for the few
/// milliseconds between its PREPARE and COMMIT PREPARED, or until the next owner of the task
/// resolves it after a crash).
pub struct PostgresSink<K, V> {
    inner: Arc<SinkSettings<K, V>>,
}

impl<K, V> Clone for PostgresSink<K, V> {
    fn clone(&self) -> Self {
        PostgresSink {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> std::fmt::Debug for PostgresSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("name", &self.inner.name)
            .field("table", &self.inner.table)
            .finish_non_exhaustive()
    }
}

struct SinkSettings<K, V> {
    name: String,
    url: String,
    table: Table,
    map: Arc<RowMapper<K, V>>,
    tls: Tls,
}

impl<K, V> Clone for SinkSettings<K, V> {
    fn clone(&self) -> Self {
        SinkSettings {
            name: self.name.clone(),
            url: self.url.clone(),
            table: self.table.clone(),
            map: Arc::clone(&self.map),
            tls: self.tls.clone(),
        }
    }
}

impl<K: Data, V: Data> PostgresSink<K, V> {
    /// A sink named `name` (unique in the app: it prefixes the ids of its prepared
    /// transactions) writing `table` at `url` (`postgres://user@host:port/database`), each
    /// record mapped by `map`.
    ///
    /// # Errors
    /// When the name is empty or holds `@`, or `url` is not a PostgreSQL URL.
    pub fn new(
        name: &str,
        url: &str,
        table: Table,
        map: impl Fn(&K, &V) -> Option<Change> + Send + Sync + 'static,
    ) -> Result<Self, PostgresError> {
        if name.is_empty() || name.contains('@') {
            return Err(PostgresError::Config {
                sink: name.to_owned(),
                reason: "a sink's name must be non-empty and free of `@`".to_owned(),
            });
        }
        crate::connect::check_url(name, url)?;
        Ok(PostgresSink {
            inner: Arc::new(SinkSettings {
                name: name.to_owned(),
                url: url.to_owned(),
                table,
                map: Arc::new(map),
                tls: Tls::default(),
            }),
        })
    }

    /// Checks the server's certificate with `tls` (the system's roots by default). TLS is
    /// used whenever the server offers it; `sslmode=require` in the URL insists on it and
    /// `sslmode=disable` turns it off.
    #[must_use]
    pub fn with_tls(mut self, tls: Tls) -> Self {
        Arc::make_mut(&mut self.inner).tls = tls;
        self
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A processor for one task (the topology calls this once per task).
    pub fn processor(&self) -> PostgresSinkProcessor<K, V> {
        PostgresSinkProcessor {
            settings: Arc::clone(&self.inner),
            connection: None,
            buffer: Vec::new(),
        }
    }
}

/// One task's instance of a [`PostgresSink`]: buffers the changes of the open commit and
/// takes part in the task's commits.
pub struct PostgresSinkProcessor<K, V> {
    settings: Arc<SinkSettings<K, V>>,
    connection: Option<Connection>,
    buffer: Vec<Change>,
}

impl<K, V> std::fmt::Debug for PostgresSinkProcessor<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSinkProcessor")
            .field("name", &self.settings.name)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

/// A session with its prepared statements.
struct Connection {
    client: Client,
    statements: HashMap<(bool, usize), Statement>,
}

impl<K: Data, V: Data> Processor for PostgresSinkProcessor<K, V> {
    type KeyIn = K;
    type ValueIn = V;
    type KeyOut = ();
    type ValueOut = ();

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<K, V>,
    ) -> Result<(), ProcessError> {
        self.write(&record.key, &record.value).map_err(|reason| {
            let at = ctx.record_metadata().map_or_else(
                || "a punctuation's record".to_owned(),
                |m| {
                    format!(
                        "the record at {} [{}] offset {}",
                        m.topic, m.partition, m.offset
                    )
                },
            );
            ProcessError::user(format!(
                "sink `{}`: {at} maps to {reason}",
                self.settings.name
            ))
        })
    }

    fn close(&mut self) {
        self.connection = None;
    }

    fn two_phase_sink(&mut self) -> Option<&mut dyn TwoPhaseSink> {
        Some(self)
    }
}

impl<K, V> PostgresSinkProcessor<K, V> {
    /// Buffers the change record (`key`, `value`) maps to, for the next
    /// [`prepare`](TwoPhaseSink::prepare) (what [`Processor::process`] does, for a sink
    /// driven by hand).
    ///
    /// # Errors
    /// The change does not fit the table (the message says how).
    pub fn write(&mut self, key: &K, value: &V) -> Result<(), String> {
        let Some(change) = (self.settings.map)(key, value) else {
            return Ok(());
        };
        self.settings.table.check(&change)?;
        self.buffer.push(change);
        Ok(())
    }

    /// The session, opened (and the commits table created) when there is none.
    fn connection(&mut self) -> Result<&mut Connection, SinkError> {
        if self.connection.is_none() {
            let settings = format!(
                "SET lock_timeout = '{}ms'; SET application_name = 'eddy sink {}'",
                LOCK_TIMEOUT.as_millis(),
                self.settings.name.replace('\'', "")
            );
            let create_table = format!(
                "CREATE TABLE IF NOT EXISTS {COMMITS_TABLE} (sink text NOT NULL, application text NOT NULL, \
                 task text NOT NULL, owner text NOT NULL, sequence bigint NOT NULL, \
                 committed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sink, application, task, owner))"
            );
            let opened = open_session(
                &self.settings.url,
                &self.settings.tls,
                &settings,
                &create_table,
            );
            let client = match opened {
                Ok(client) => client,
                Err(ConnectError::Database { what, source }) => {
                    return Err(self.failed(what, &source))
                }
                Err(ConnectError::Tls(message)) => {
                    return Err(SinkError::fatal(self.settings.name.clone(), message))
                }
            };
            self.connection = Some(Connection {
                client,
                statements: HashMap::new(),
            });
        }
        self.connection
            .as_mut()
            .ok_or_else(|| SinkError::transient(self.settings.name.clone(), "no connection"))
    }

    /// The sink error for `e` while doing `what`; a broken session is dropped.
    fn failed(&mut self, what: &str, e: &postgres::Error) -> SinkError {
        let transient = is_transient(e);
        if transient || e.is_closed() {
            self.connection = None;
        }
        let message = format!(
            "{what} (table `{}`): {}",
            self.settings.table.name(),
            describe(e)
        );
        let name = self.settings.name.clone();
        if transient {
            SinkError::transient(name, message)
        } else {
            SinkError::fatal(name, message)
        }
    }

    /// This sink's id for the prepared transaction of `commit`.
    fn global_id(&self, commit: &CommitId) -> String {
        format!("{}@{}", self.settings.name, commit.global_id())
    }

    /// Runs `COMMIT PREPARED` or `ROLLBACK PREPARED` for `commit`.
    fn finish(&mut self, commit: &CommitId, verb: &str) -> Result<Resolved, SinkError> {
        let sql = format!("{verb} PREPARED {}", literal(&self.global_id(commit)));
        let result = self.connection()?.client.batch_execute(&sql);
        match result {
            Ok(()) => Ok(Resolved::Done),
            Err(e) if is_unknown_prepared(&e) => Ok(Resolved::Missing),
            Err(e) => Err(self.failed(&format!("{verb} PREPARED {commit}"), &e)),
        }
    }
}

impl<K: Send, V: Send> TwoPhaseSink for PostgresSinkProcessor<K, V> {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn prepare(&mut self, commit: &CommitId) -> Result<bool, SinkError> {
        if self.buffer.is_empty() {
            return Ok(false);
        }
        let gid = self.global_id(commit);
        if gid.len() > CommitId::MAX_GLOBAL_ID {
            return Err(SinkError::fatal(
                self.settings.name.clone(),
                format!(
                    "the prepared transaction id `{gid}` is {} bytes; PostgreSQL takes at most {}: shorten the sink's name or the application.id",
                    gid.len(),
                    CommitId::MAX_GLOBAL_ID
                ),
            ));
        }
        let settings = Arc::clone(&self.settings);
        // Taken: after an abort the records are processed again and buffered anew.
        let buffer = std::mem::take(&mut self.buffer);
        let connection = self.connection()?;
        let outcome = prepare_in(connection, &settings, commit, &gid, &buffer);
        match outcome {
            Ok(()) => Ok(true),
            Err(e) => Err(self.failed(
                &format!("preparing {gid} with {} changes", buffer.len()),
                &e,
            )),
        }
    }

    fn commit(&mut self, commit: &CommitId) -> Result<Resolved, SinkError> {
        self.finish(commit, "COMMIT")
    }

    fn rollback(&mut self, commit: &CommitId) -> Result<Resolved, SinkError> {
        self.finish(commit, "ROLLBACK")
    }

    fn discard(&mut self) {
        self.buffer.clear();
    }

    fn prepared(&mut self, application: &str, task: TaskId) -> Result<Vec<CommitId>, SinkError> {
        let prefix = format!(
            "{}@{}",
            self.settings.name,
            CommitId::task_prefix(application, task)
        );
        let rows = self.connection()?.client.query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND left(gid, length($1)) = $1",
            &[&prefix],
        );
        let rows = rows.map_err(|e| self.failed("listing prepared transactions", &e))?;
        let own = format!("{}@", self.settings.name);
        Ok(rows
            .iter()
            .filter_map(|row| {
                let gid: String = row.get(0);
                CommitId::parse(gid.strip_prefix(&own)?)
            })
            .collect())
    }

    fn is_committed(&mut self, commit: &CommitId) -> Result<bool, SinkError> {
        let name = self.settings.name.clone();
        let row = self.connection()?.client.query_opt(
            &format!(
                "SELECT sequence FROM {COMMITS_TABLE} WHERE sink = $1 AND application = $2 AND task = $3 AND owner = $4"
            ),
            &[&name, &commit.application, &commit.task.to_string(), &commit.owner],
        );
        let row = row.map_err(|e| self.failed("reading the commits table", &e))?;
        Ok(row.is_some_and(|r| {
            let sequence: i64 = r.get(0);
            u64::try_from(sequence).is_ok_and(|s| s >= commit.sequence)
        }))
    }

    fn oldest_prepared_age(&mut self, application: &str) -> Result<Option<Duration>, SinkError> {
        let prefix = format!(
            "{}@{}",
            self.settings.name,
            CommitId::application_prefix(application)
        );
        let row = self.connection()?.client.query_one(
            "SELECT EXTRACT(EPOCH FROM now() - min(prepared))::float8 FROM pg_prepared_xacts \
             WHERE database = current_database() AND left(gid, length($1)) = $1",
            &[&prefix],
        );
        let row = row.map_err(|e| self.failed("reading the oldest prepared transaction", &e))?;
        let seconds: Option<f64> = row.get(0);
        Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
    }
}

/// Writes `changes` and the commit's sequence in one transaction and prepares it as `gid`;
/// on failure a session that survived is left outside any transaction.
fn prepare_in<K, V>(
    connection: &mut Connection,
    settings: &SinkSettings<K, V>,
    commit: &CommitId,
    gid: &str,
    changes: &[Change],
) -> Result<(), postgres::Error> {
    let run = |connection: &mut Connection| -> Result<(), postgres::Error> {
        connection.client.batch_execute("BEGIN")?;
        settings
            .table
            .apply(&mut connection.client, &mut connection.statements, changes)?;
        connection.client.execute(
            &format!(
                "INSERT INTO {COMMITS_TABLE} (sink, application, task, owner, sequence) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sink, application, task, owner) \
                 DO UPDATE SET sequence = EXCLUDED.sequence, committed_at = now()"
            ),
            &[
                &settings.name,
                &commit.application,
                &commit.task.to_string(),
                &commit.owner,
                &i64::try_from(commit.sequence).unwrap_or(i64::MAX),
            ],
        )?;
        connection
            .client
            .batch_execute(&format!("PREPARE TRANSACTION {}", literal(gid)))
    };
    let outcome = run(connection);
    if outcome.is_err() && !connection.client.is_closed() {
        let _ = connection.client.batch_execute("ROLLBACK");
    }
    outcome
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
