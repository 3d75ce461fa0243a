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
    /// The server refused or could not be reached.
    Database(postgres::Error),
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

/// Opens a session to `url` with `tls`.
pub(crate) fn connect(url: &str, tls: &Tls) -> Result<Client, ConnectError> {
    let connector = tls.connector().map_err(ConnectError::Tls)?;
    Client::connect(url, connector).map_err(ConnectError::Database)
}
