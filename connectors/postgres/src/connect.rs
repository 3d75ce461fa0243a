//! Opening sessions: TLS by default (OpenSSL, the server's certificate checked against the
//! system's roots or a given one), plain only where the URL says `sslmode=disable` or the
//! server offers no TLS under the default `sslmode=prefer`.

use std::path::{Path, PathBuf};

use openssl::ssl::{SslConnector, SslMethod};
use postgres::Client;
use postgres_openssl::MakeTlsConnector;

/// How a sink checks the server's TLS certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    root_certificate: Option<PathBuf>,
}

impl Tls {
    /// Trusts the system's root certificates (the default).
    pub fn system_roots() -> Self {
        Tls::default()
    }

    /// Trusts the certificate authority in the PEM file `path` (as well as the system's).
    pub fn root_certificate(path: impl AsRef<Path>) -> Self {
        Tls {
            root_certificate: Some(path.as_ref().to_owned()),
        }
    }

    /// The connector for these settings.
    fn connector(&self) -> Result<MakeTlsConnector, String> {
        let mut builder = SslConnector::builder(SslMethod::tls_client())
            .map_err(|e| format!("setting up TLS: {e}"))?;
        if let Some(path) = &self.root_certificate {
            builder
                .set_ca_file(path)
                .map_err(|e| format!("reading the root certificate {}: {e}", path.display()))?;
        }
        Ok(MakeTlsConnector::new(builder.build()))
    }
}

/// Why a session could not open.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The TLS settings are unusable (a missing or bad certificate file).
    Tls(String),
    /// The server refused, could not be reached, or failed a set-up statement.
    Database {
        /// What failed: connecting or preparing the session.
        what: &'static str,
        /// PostgreSQL's error.
        source: postgres::Error,
    },
}

/// Checks that `url` is a PostgreSQL connection URL, for sink `sink`.
pub(crate) fn check_url(sink: &str, url: &str) -> Result<(), crate::PostgresError> {
    url.parse::<postgres::Config>()
        .map(|_| ())
        .map_err(|source| crate::PostgresError::Database {
            sink: sink.to_owned(),
            what: "parsing the connection URL".to_owned(),
            source,
        })
}

/// Opens a session to `url` with `tls`, runs its `settings` (`SET …` statements), then
/// creates the sink's bookkeeping table with `create_table` (`CREATE TABLE IF NOT EXISTS …`).
///
/// The creation runs on its own: statements sent together form one implicit transaction, and
/// a creation that loses a race to another session (which PostgreSQL reports as a duplicate,
/// though the table then exists) would undo the settings with it.
pub(crate) fn open_session(
    url: &str,
    tls: &Tls,
    settings: &str,
    create_table: &str,
) -> Result<Client, ConnectError> {
    let connector = tls.connector().map_err(ConnectError::Tls)?;
    let failed = |what| move |source| ConnectError::Database { what, source };
    let mut client = Client::connect(url, connector).map_err(failed("connecting"))?;
    client
        .batch_execute(settings)
        .map_err(failed("preparing the session"))?;
    if let Err(e) = client.batch_execute(create_table) {
        let raced = e.code().is_some_and(|c| {
            *c == postgres::error::SqlState::UNIQUE_VIOLATION
                || *c == postgres::error::SqlState::DUPLICATE_TABLE
        });
        if !raced {
            return Err(failed("preparing the session")(e));
        }
    }
    Ok(client)
}
