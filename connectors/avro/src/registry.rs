//! The schema registry: where it is, how to authenticate, and the calls the serdes and
//! operators need beyond encoding (compatibility levels per subject).

use std::time::Duration;

use schema_registry_converter::blocking::schema_registry::SrSettings;

/// A registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The client could not be configured (a bad URL or header value).
    #[error("schema registry at {url}: {message}")]
    Settings {
        /// The registry's address.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The registry could not be reached or answered with a server error; trying again later
    /// may succeed.
    #[error("schema registry at {url} unreachable for {what}: {source}")]
    Unreachable {
        /// The registry's address.
        url: String,
        /// The call.
        what: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry refused the call.
    #[error("schema registry at {url} refused {what}: HTTP {status}: {body}")]
    Refused {
        /// The registry's address.
        url: String,
        /// The call.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The answer's body.
        body: String,
    },
}

/// How a subject's new schema versions must relate to its earlier ones (the registry checks
/// each registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    /// A new schema reads data written with the previous one.
    Backward,
    /// A new schema reads data written with every earlier one.
    BackwardTransitive,
    /// The previous schema reads data written with a new one.
    Forward,
    /// Backward and forward.
    Full,
    /// No check.
    None,
}

impl Compatibility {
    fn as_str(self) -> &'static str {
        match self {
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::Full => "FULL",
            Compatibility::None => "NONE",
        }
    }
}

/// Settings of a registry client: address, authentication, timeout, trusted certificates.
#[derive(Clone)]
pub struct RegistryBuilder {
    url: String,
    basic: Option<(String, Option<String>)>,
    bearer: Option<String>,
    timeout: Duration,
    root_certificates: Vec<Vec<u8>>,
}

impl RegistryBuilder {
    /// Authenticates with HTTP basic authentication.
    #[must_use]
    pub fn basic_auth(mut self, user: &str, password: Option<&str>) -> Self {
        self.basic = Some((user.to_owned(), password.map(str::to_owned)));
        self
    }

    /// Authenticates with a bearer token.
    #[must_use]
    pub fn bearer_token(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    /// The longest a registry call may take (default 10 s); a call that takes longer is a
    /// transient failure.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts the certificate authority in PEM `pem` for an `https` registry, besides the
    /// system's roots (a registry with a certificate from a private CA).
    #[must_use]
    pub fn root_certificate_pem(mut self, pem: &[u8]) -> Self {
        self.root_certificates.push(pem.to_vec());
        self
    }

    /// An HTTP client builder with these settings' timeout and trusted certificates.
    fn http_builder(&self) -> Result<reqwest::blocking::ClientBuilder, String> {
        let mut builder = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(self.timeout);
        for pem in &self.root_certificates {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|e| format!("a root certificate is not PEM: {e}"))?;
            builder = builder.add_root_certificate(certificate);
        }
        Ok(builder)
    }

    /// The client.
    ///
    /// # Errors
    /// Fails when the settings cannot make a client.
    pub fn build(self) -> Result<Registry, RegistryError> {
        let settings_error = |message: String| RegistryError::Settings {
            url: self.url.clone(),
            message,
        };
        let mut sr = SrSettings::new_builder(self.url.clone());
        sr.no_proxy().set_timeout(self.timeout);
        if let Some((user, password)) = &self.basic {
            sr.set_basic_authorization(user, password.as_deref());
        }
        if let Some(token) = &self.bearer {
            sr.set_token_authorization(token);
        }
        let settings = sr
            .build_with(self.http_builder().map_err(settings_error)?)
            .map_err(|e| settings_error(format!("{e}")))?;
        let http = self
            .http_builder()
            .map_err(settings_error)?
            .build()
            .map_err(|e| settings_error(format!("HTTP client: {e}")))?;
        Ok(Registry {
            url: self.url.trim_end_matches('/').to_owned(),
            settings,
            http,
            basic: self.basic,
            bearer: self.bearer,
        })
    }
}

/// A schema registry serving the Confluent API (Confluent Schema Registry, or Apicurio
/// Registry under `/apis/ccompat/v7`).
#[derive(Clone)]
pub struct Registry {
    url: String,
    settings: SrSettings,
    http: reqwest::blocking::Client,
    basic: Option<(String, Option<String>)>,
    bearer: Option<String>,
}

impl Registry {
    /// Settings for the registry at `url` (for example `http://registry:8080/apis/ccompat/v7`).
    pub fn builder(url: &str) -> RegistryBuilder {
        RegistryBuilder {
            url: url.to_owned(),
            basic: None,
            bearer: None,
            timeout: Duration::from_secs(10),
            root_certificates: Vec::new(),
        }
    }

    /// The registry's address.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn settings(&self) -> &SrSettings {
        &self.settings
    }

    /// Sets the compatibility level of `subject`. Registries differ in their global default
    /// (Apicurio checks nothing unless told), so set it per subject.
    ///
    /// # Errors
    /// Fails when the registry cannot be reached or refuses.
    pub fn set_compatibility(
        &self,
        subject: &str,
        level: Compatibility,
    ) -> Result<(), RegistryError> {
        let what = format!("setting the compatibility of subject `{subject}`");
        let body = serde_json::json!({ "compatibility": level.as_str() });
        self.call(
            reqwest::Method::PUT,
            &format!("config/{subject}"),
            &body,
            &what,
        )
        .map(|_| ())
    }

    /// The version of `schema` (JSON) under `subject`, when it is registered there.
    ///
    /// # Errors
    /// Fails when the registry cannot be reached or refuses otherwise.
    pub fn version_of(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        let what = format!("looking up a schema under subject `{subject}`");
        let body = serde_json::json!({ "schema": schema });
        match self.call(
            reqwest::Method::POST,
            &format!("subjects/{subject}"),
            &body,
            &what,
        ) {
            Ok(answer) => {
                let answer: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
                Ok(answer["version"]
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok()))
            }
            Err(RegistryError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends `body` to `path` under the registry's URL, authenticated; the answer's body on
    /// success. `what` names the call in errors.
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
        what: &str,
    ) -> Result<String, RegistryError> {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.url))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/vnd.schemaregistry.v1+json",
            )
            .body(body.to_string());
        if let Some((user, password)) = &self.basic {
            request = request.basic_auth(user, password.as_deref());
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .map_err(|source| RegistryError::Unreachable {
                url: self.url.clone(),
                what: what.to_owned(),
                source,
            })?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        if status.is_success() {
            return Ok(text);
        }
        Err(RegistryError::Refused {
            url: self.url.clone(),
            what: what.to_owned(),
            status: status.as_u16(),
            body: text,
        })
    }
}

/// Debug output names the registry and the kind of authentication, never the secrets.
fn debug_registry(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    url: &str,
    basic: Option<&(String, Option<String>)>,
    bearer: bool,
) -> std::fmt::Result {
    let auth = match (basic, bearer) {
        (Some((user, _)), _) => format!("basic ({user}, password redacted)"),
        (None, true) => "bearer (token redacted)".to_owned(),
        (None, false) => "none".to_owned(),
    };
    f.debug_struct(name)
        .field("url", &url)
        .field("auth", &auth)
        .finish_non_exhaustive()
}

impl std::fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_registry(
            f,
            "RegistryBuilder",
            &self.url,
            self.basic.as_ref(),
            self.bearer.is_some(),
        )
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_registry(
            f,
            "Registry",
            &self.url,
            self.basic.as_ref(),
            self.bearer.is_some(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Registry;

    #[test]
    fn debug_output_never_shows_secrets() {
        let builder = Registry::builder("http://127.0.0.1:1/apis/ccompat/v7")
            .basic_auth("app", Some("s3cret"));
        let registry = builder.clone().build().unwrap();
        for shown in [format!("{builder:?}"), format!("{registry:?}")] {
            assert!(
                shown.contains("app") && !shown.contains("s3cret"),
                "{shown}"
            );
        }
        let token = Registry::builder("http://127.0.0.1:1").bearer_token("t0ken");
        assert!(!format!("{token:?}").contains("t0ken"));
    }
}
