//! Connection settings shared by every Kafka client an Eddy app creates.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// How long librdkafka waits before fetching again for a partition whose queue was full
/// (see [`KafkaSettings::consumer_config_with`]).
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// Connection settings shared by every Kafka client (consumer, producer, admin) of an app.
/// Debug output redacts the values of secret properties (see [`is_sensitive`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list of brokers to bootstrap from.
    pub bootstrap_servers: String,
    /// Upper bound of one Kafka transaction; the broker aborts a transaction open longer than
    /// this, which also bounds how long a crashed instance's partitions stay blocked.
    /// Must exceed the worst commit interval plus pause and stay under the broker's
    /// `transaction.max.timeout.ms`.
    #[serde(default = "default_transaction_timeout", with = "millis")]
    pub transaction_timeout: Duration,
    /// Extra librdkafka properties applied to every client (for example security settings).
    #[serde(default)]
    pub client_properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .client_properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_sensitive(k) {
                    REDACTED
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("transaction_timeout", &self.transaction_timeout)
            .field("client_properties", &properties)
            .finish()
    }
}

/// What stands for a secret in errors and logs.
pub const REDACTED: &str = "<redacted>";

/// True for librdkafka properties whose values are secrets (passwords, keys, tokens, JAAS
/// and OAUTHBEARER configs), which Eddy never shows in errors, logs or debug output.
pub fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "token",
        // `sasl.oauthbearer.config`: the unsecured JWT's claims, or a provider's credentials.
        "oauthbearer.config",
        "ssl.key.pem",
        "ssl_key",
        "private",
    ]
    .iter()
    .any(|word| name.contains(word))
}

fn default_transaction_timeout() -> Duration {
    Duration::from_millis(crate::config::TRANSACTION_TIMEOUT_MS)
}

impl KafkaSettings {
    /// Settings for the given bootstrap servers with every other value at its default.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaSettings {
            bootstrap_servers: bootstrap_servers.into(),
            transaction_timeout: default_transaction_timeout(),
            client_properties: BTreeMap::new(),
        }
    }

    /// `text` with the value of every secret property replaced by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        self.client_properties
            .iter()
            .filter(|(k, v)| is_sensitive(k) && !v.is_empty())
            .fold(text.to_owned(), |out, (_, v)| {
                out.replace(v.as_str(), REDACTED)
            })
    }

    /// Hands every property to librdkafka once, without connecting, so a bad name or value
    /// is found at start-up and reported naming the property, with secrets redacted (
    /// librdkafka's own message echoes the value).
    ///
    /// # Errors
    /// The first property librdkafka refuses: `(property, redacted reason)`.
    pub fn check_properties(&self) -> Result<(), (String, String)> {
        match self
            .client_config("eddy-config-check")
            .create_native_config()
        {
            Ok(_) => Ok(()),
            Err(rdkafka::error::KafkaError::ClientConfig(_, description, key, _)) => {
                Err((key, self.redact(&description)))
            }
            Err(other) => Err((String::new(), self.redact(&other.to_string()))),
        }
    }

    /// A base librdkafka configuration: bootstrap servers, client id and the extra properties.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        self.client_config_with(client_id, &[])
    }

    /// A consumer's base configuration: [`KafkaSettings::client_config_with`] plus what every
    /// consumer Eddy reads records with needs (the app's own properties still win).
    ///
    /// librdkafka stops fetching a partition for `fetch.queue.backoff.ms` (1 s by default)
    /// whenever its queue holds more than `queued.min.messages` or
    /// `queued.max.messages.kbytes`. A reader that drains its queue sooner then waits out the
    /// rest of that second: a changelog restore ran at a quarter of its speed, and a bounded
    /// fetch queue halved throughput. Ten milliseconds keeps the queue bounded without stalls.
    pub fn consumer_config_with(&self, client_id: &str, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut all = vec![("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)];
        all.extend_from_slice(defaults);
        self.client_config_with(client_id, &all)
    }

    /// A base configuration with Eddy's `defaults` for one kind of client; the app's own
    /// properties win over them.
    pub fn client_config_with(&self, client_id: &str, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", client_id);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.client_properties {
            config.set(key, value);
        }
        config
    }

    /// Configuration of an idempotent, non-transactional producer (at-least-once mode):
    /// Java-compatible partitioning (`murmur2_random`) and a short linger.
    pub fn idempotent_producer_config(&self, client_id: &str) -> ClientConfig {
        self.producer_config(client_id, &[])
    }

    /// Configuration of a transactional producer: the idempotent one plus the transactional
    /// id, the transaction timeout and a short retry back-off so back-to-back transactions do
    /// not stall on the coordinator's CONCURRENT_TRANSACTIONS answer.
    pub fn transactional_producer_config(&self, transactional_id: &str) -> ClientConfig {
        let timeout = self.transaction_timeout.as_millis().to_string();
        self.producer_config(
            transactional_id,
            &[
                ("transactional.id", transactional_id),
                ("transaction.timeout.ms", &timeout),
                ("retry.backoff.ms", "10"),
                ("retry.backoff.max.ms", "100"),
            ],
        )
    }

    /// The producers' shared defaults. `topic.metadata.propagation.max.ms` is how long
    /// librdkafka holds records for a topic the brokers do not know before failing them with
    /// `UnknownTopic`; its 30 s outlast a commit, so a sink topic deleted under a running app
    /// only ever timed a commit out, and every start-over's new producer waited anew until the
    /// restart deadline. Eddy writes only to topics it saw at start (or created and waited
    /// for), so half the transaction timeout is ample for a topic's metadata to reach every
    /// broker. A record queued for a topic the brokers do not know then fails in its
    /// delivery report before the commit times out, and the commit's error path asks the
    /// brokers whether the topic exists ([`super::OutputProducer::take_rejected`]); a send to
    /// a topic librdkafka already holds to be missing fails at once with `UnknownTopic`.
    fn producer_config(&self, client_id: &str, extra: &[(&str, &str)]) -> ClientConfig {
        let propagation = (self.transaction_timeout / 2).as_millis().to_string();
        let mut defaults = vec![
            ("enable.idempotence", "true"),
            ("partitioner", "murmur2_random"),
            ("linger.ms", "5"),
            ("topic.metadata.propagation.max.ms", propagation.as_str()),
            // A producer's metadata request must never create the topic it asks for (brokers
            // allow it by default): a sink topic deleted under the app would come back with
            // the broker's default partition count, and keys would land in other partitions.
            ("allow.auto.create.topics", "false"),
        ];
        defaults.extend_from_slice(extra);
        self.client_config_with(client_id, &defaults)
    }
}

/// Serde for a [`Duration`] written as whole milliseconds.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_fetch_again_soon_after_a_full_queue_unless_the_app_says_otherwise() {
        let mut settings = KafkaSettings::new("127.0.0.1:9092");
        let config = settings.consumer_config_with("reader", &[("group.id", "g")]);
        assert_eq!(
            config.get("fetch.queue.backoff.ms"),
            Some(FETCH_QUEUE_BACKOFF_MS)
        );
        assert_eq!(config.get("group.id"), Some("g"));
        settings
            .client_properties
            .insert("fetch.queue.backoff.ms".to_owned(), "500".to_owned());
        let config = settings.consumer_config_with("reader", &[]);
        assert_eq!(config.get("fetch.queue.backoff.ms"), Some("500"));
    }

    /// A record for a topic the brokers do not know fails within half the transaction
    /// timeout, before a commit times out, unless the app says otherwise.
    #[test]
    fn producers_give_up_on_a_missing_topic_before_a_commit_times_out() {
        let mut settings = KafkaSettings::new("127.0.0.1:9092");
        settings.transaction_timeout = std::time::Duration::from_secs(10);
        for config in [
            settings.transactional_producer_config("t"),
            settings.idempotent_producer_config("p"),
        ] {
            assert_eq!(
                config.get("topic.metadata.propagation.max.ms"),
                Some("5000")
            );
            assert_eq!(config.get("allow.auto.create.topics"), Some("false"));
        }
        settings.client_properties.insert(
            "topic.metadata.propagation.max.ms".to_owned(),
            "800".to_owned(),
        );
        let config = settings.transactional_producer_config("t");
        assert_eq!(config.get("topic.metadata.propagation.max.ms"), Some("800"));
    }

    /// Every property librdkafka treats as secret whose value is one (it redacts them in its
    /// own dumps) is redacted by Eddy too; connection details are not.
    #[test]
    fn the_secrets_librdkafka_knows_are_sensitive() {
        for name in [
            "sasl.password",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
            "ssl.key.password",
            "ssl.key.pem",
            "ssl_key",
            "ssl.keystore.password",
        ] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in [
            "bootstrap.servers",
            "security.protocol",
            "sasl.mechanisms",
            "debug",
        ] {
            assert!(!is_sensitive(name), "{name}");
        }
    }

    /// With `kafka.properties.debug=conf` librdkafka logs each client's configuration as it
    /// is created, and Eddy's clients pass librdkafka's log lines on to the app's log: the
    /// lines name the secret properties but never show their values.
    #[test]
    fn a_logged_client_configuration_shows_no_secret() {
        use std::sync::{Arc, Mutex};
        use std::time::Instant;

        use rdkafka::config::RDKafkaLogLevel;
        use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
        use rdkafka::ClientContext;

        /// Keeps every log line librdkafka hands the client.
        #[derive(Default)]
        struct Lines(Arc<Mutex<Vec<String>>>);
        impl ClientContext for Lines {
            fn log(&self, _: RDKafkaLogLevel, facility: &str, line: &str) {
                self.0.lock().unwrap().push(format!("{facility} {line}"));
            }
        }
        impl ProducerContext for Lines {
            type DeliveryOpaque = ();
            fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
        }

        const SECRET: &str = "hunter2-in-the-log";
        let mut settings = KafkaSettings::new("127.0.0.1:9");
        for (key, value) in [
            ("debug", "conf"),
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanisms", "PLAIN"),
            ("sasl.username", "eddy"),
            ("sasl.password", SECRET),
            ("ssl.key.password", SECRET),
        ] {
            settings
                .client_properties
                .insert(key.to_owned(), value.to_owned());
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut config = settings.idempotent_producer_config("secret-check");
        config.set_log_level(RDKafkaLogLevel::Debug);
        let producer: BaseProducer<Lines> = config
            .create_with_context(Lines(Arc::clone(&lines)))
            .unwrap();
        let dumped = |lines: &[String]| {
            lines.iter().any(|l| l.contains("sasl.password"))
                && lines.iter().any(|l| l.contains("ssl.key.password"))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !dumped(&lines.lock().unwrap()) && Instant::now() < deadline {
            producer.poll(Duration::from_millis(100));
        }
        let lines = lines.lock().unwrap();
        assert!(dumped(&lines), "no configuration logged: {lines:#?}");
        let leaks: Vec<_> = lines.iter().filter(|l| l.contains(SECRET)).collect();
        assert!(leaks.is_empty(), "the secret is logged: {leaks:#?}");
    }
}
