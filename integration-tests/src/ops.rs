//! Calling a running instance's ops HTTP server from tests: its address, requests, and
//! Prometheus samples.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use eddy::ops::ADDRESS_FILE;

use crate::{eventually, eventually_every, on_timeout};

/// The ops server of one instance.
#[derive(Debug, Clone)]
pub struct OpsClient {
    /// Its `host:port`.
    pub address: String,
}

/// An answer of the ops server: status code and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// One Prometheus sample: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `name="value"` pairs as written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl OpsClient {
    /// Waits until the instance whose state directory is `state_dir` wrote its ops address.
    ///
    /// # Errors
    /// No address appeared before `deadline`.
    pub fn of(state_dir: &Path, application_id: &str, deadline: Duration) -> anyhow::Result<Self> {
        let file = state_dir.join(application_id).join(ADDRESS_FILE);
        let mut address = String::new();
        let waited = eventually(&format!("an ops address in {file:?}"), deadline, || {
            address = std::fs::read_to_string(&file)
                .map(|a| a.trim().to_owned())
                .unwrap_or_default();
            Ok(!address.is_empty())
        });
        on_timeout(waited, || {
            bail!("no ops address in {file:?} after {deadline:?}")
        })?;
        Ok(OpsClient { address })
    }

    /// `method path`, answered within 60 s.
    ///
    /// # Errors
    /// The server cannot be reached.
    pub fn request(&self, method: &str, path: &str) -> anyhow::Result<HttpResponse> {
        self.request_with(method, path, &[])
    }

    /// `method path` with request `headers`, answered within 60 s.
    ///
    /// # Errors
    /// The server cannot be reached.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<HttpResponse> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("building an HTTP client")?;
        let url = format!("http://{}{path}", self.address);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .with_context(|| format!("HTTP method {method}"))?;
        let mut request = client.request(method.clone(), &url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .with_context(|| format!("{method} {url}: reading the body"))?;
        Ok(HttpResponse { status, body })
    }

    /// `GET path`.
    ///
    /// # Errors
    /// The server cannot be reached.
    pub fn get(&self, path: &str) -> anyhow::Result<HttpResponse> {
        self.request("GET", path)
    }

    /// `GET path` as JSON, with its status.
    ///
    /// # Errors
    /// The server cannot be reached or the body is not JSON.
    pub fn get_json(&self, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let response = self.get(path)?;
        let body = serde_json::from_str(&response.body)
            .with_context(|| format!("GET {path}: not JSON: {}", response.body))?;
        Ok((response.status, body))
    }

    /// Polls `GET path` until it answers `status`, failing after `deadline` with the last
    /// answer.
    ///
    /// # Errors
    /// Another status at the deadline, or the server cannot be reached.
    pub fn wait_status(
        &self,
        path: &str,
        status: u16,
        deadline: Duration,
    ) -> anyhow::Result<HttpResponse> {
        let mut last = None;
        let what = format!("GET {path} answering {status}");
        let interval = Duration::from_millis(200);
        let waited = eventually_every(&what, deadline, interval, || {
            let response = self.get(path)?;
            let answered = response.status == status;
            last = Some(response);
            Ok(answered)
        });
        on_timeout(waited, || match &last {
            Some(response) => bail!(
                "GET {path} answered {} after {deadline:?}, not {status}: {}",
                response.status,
                response.body
            ),
            None => bail!("GET {path}: no answer after {deadline:?}"),
        })?;
        last.with_context(|| format!("GET {path}: no answer"))
    }

    /// Every task the instance reports in `GET /ready` (whatever the answer's status), as the
    /// JSON objects of its status: `task`, `state`, `state_source`, `replays`, ...
    ///
    /// # Errors
    /// The server cannot be reached or answers no JSON.
    pub fn tasks(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let (_, ready) = self.get_json("/ready")?;
        Ok(ready["threads"]
            .as_object()
            .into_iter()
            .flat_map(|threads| threads.values())
            .flat_map(|thread| thread["tasks"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// The sum of the samples of metric `name` whose labels include every one of `labels`.
    ///
    /// # Errors
    /// The server cannot be reached or answers an error.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        Ok(self
            .samples(name)?
            .iter()
            .filter(|s| labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| s.value)
            .sum())
    }

    /// Every sample of metric `name` from `GET /metrics`.
    ///
    /// # Errors
    /// The server cannot be reached or answers an error.
    pub fn samples(&self, name: &str) -> anyhow::Result<Vec<Sample>> {
        let response = self.get("/metrics")?;
        if response.status != 200 {
            bail!(
                "GET /metrics answered {}: {}",
                response.status,
                response.body
            );
        }
        Ok(parse_samples(&response.body, name))
    }
}

/// The samples of metric `name` in Prometheus text `text`.
pub fn parse_samples(text: &str, name: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (k, v) = pair.split_once("=\"")?;
                    Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
                })
                .collect();
            Some(Sample {
                labels,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_with_their_labels() {
        let text = "# TYPE x counter\nx{a=\"1\",b=\"two\"} 3\nx_sum{a=\"1\"} 0.5\ny 2\n";
        let x = parse_samples(text, "x");
        assert_eq!(x.len(), 1);
        assert_eq!(x[0].label("b"), Some("two"));
        assert!((x[0].value - 3.0).abs() < f64::EPSILON);
        assert_eq!(parse_samples(text, "y").len(), 1);
    }
}
